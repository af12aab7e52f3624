"use strict";(self.rspackChunktracklab_jupyter=self.rspackChunktracklab_jupyter||[]).push([[812],{920(t,e,l){var r=l(601),o=l.n(r),a=l(314),i=(l.n(a))()(o());i.push([t.id,`/* ../js/node_modules/uplot/dist/uPlot.min.css */
.uplot,
.uplot *,
.uplot *::before,
.uplot *::after {
  box-sizing: border-box;
}
.uplot {
  font-family:
    system-ui,
    -apple-system,
    "Segoe UI",
    Roboto,
    "Helvetica Neue",
    Arial,
    "Noto Sans",
    sans-serif,
    "Apple Color Emoji",
    "Segoe UI Emoji",
    "Segoe UI Symbol",
    "Noto Color Emoji";
  line-height: 1.5;
  width: min-content;
}
.u-title {
  text-align: center;
  font-size: 18px;
  font-weight: bold;
}
.u-wrap {
  position: relative;
  user-select: none;
}
.u-over,
.u-under {
  position: absolute;
}
.u-under {
  overflow: hidden;
}
.uplot canvas {
  display: block;
  position: relative;
  width: 100%;
  height: 100%;
}
.u-axis {
  position: absolute;
}
.u-legend {
  font-size: 14px;
  margin: auto;
  text-align: center;
}
.u-inline {
  display: block;
}
.u-inline * {
  display: inline-block;
}
.u-inline tr {
  margin-right: 16px;
}
.u-legend th {
  font-weight: 600;
}
.u-legend th > * {
  vertical-align: middle;
  display: inline-block;
}
.u-legend .u-marker {
  width: 1em;
  height: 1em;
  margin-right: 4px;
  background-clip: padding-box !important;
}
.u-inline.u-live th::after {
  content: ":";
  vertical-align: middle;
}
.u-inline:not(.u-live) .u-value {
  display: none;
}
.u-series > * {
  padding: 4px;
}
.u-series th {
  cursor: pointer;
}
.u-legend .u-off > * {
  opacity: 0.3;
}
.u-select {
  background: rgba(0, 0, 0, 0.07);
  position: absolute;
  pointer-events: none;
}
.u-cursor-x,
.u-cursor-y {
  position: absolute;
  left: 0;
  top: 0;
  pointer-events: none;
  will-change: transform;
}
.u-hz .u-cursor-x,
.u-vt .u-cursor-y {
  height: 100%;
  border-right: 1px dashed #607D8B;
}
.u-hz .u-cursor-y,
.u-vt .u-cursor-x {
  width: 100%;
  border-bottom: 1px dashed #607D8B;
}
.u-cursor-pt {
  position: absolute;
  top: 0;
  left: 0;
  border-radius: 50%;
  border: 0 solid;
  pointer-events: none;
  will-change: transform;
  background-clip: padding-box !important;
}
.u-axis.u-off,
.u-select.u-off,
.u-cursor-x.u-off,
.u-cursor-y.u-off,
.u-cursor-pt.u-off {
  display: none;
}

/* ../js/charts.css */
.tl-theme {
  --tl-bg: var(--jp-layout-color0, var(--vscode-editor-background, #ffffff));
  --tl-panel: var(--jp-layout-color0, var(--vscode-editor-background, #ffffff));
  --tl-track: var(--jp-layout-color2, var(--vscode-editorWidget-background, #eceff1));
  --tl-border: var(--jp-border-color2, var(--vscode-editorWidget-border, #e0e0e0));
  --tl-grid: var(--jp-border-color3, var(--vscode-editorIndentGuide-background, rgba(0, 0, 0, 0.07)));
  --tl-fg: var(--jp-ui-font-color1, var(--vscode-editor-foreground, rgba(0, 0, 0, 0.87)));
  --tl-fg-strong: var(--jp-ui-font-color0, var(--vscode-editor-foreground, rgba(0, 0, 0, 1)));
  --tl-fg-dim: var(--jp-ui-font-color2, var(--vscode-descriptionForeground, rgba(0, 0, 0, 0.56)));
  --tl-font: var(--jp-ui-font-family, var(--vscode-font-family, system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif));
  --tl-mono: var(--jp-code-font-family, var(--vscode-editor-font-family, ui-monospace, SFMono-Regular, Menlo, Consolas, monospace));
  --tl-c1: var(--jp-brand-color1, var(--vscode-charts-blue, #1976d2));
  --tl-c2: var(--jp-warn-color0, var(--vscode-charts-orange, #e65100));
  --tl-c3: var(--jp-accent-color1, var(--vscode-charts-green, #388e3c));
  --tl-c4: var(--md-purple-500, var(--vscode-charts-purple, #9c27b0));
  --tl-warn: var(--jp-warn-color1, var(--vscode-editorWarning-foreground, #f57c00));
  --tl-error: var(--jp-error-color1, var(--vscode-editorError-foreground, #d32f2f));
  --tl-ok: var(--jp-success-color1, var(--vscode-charts-green, #388e3c));
  --tl-radius: 6px;
  font-family: var(--tl-font);
  color: var(--tl-fg);
}
body[data-jp-theme-light=false] .tl-theme {
  --tl-c2: var(--jp-warn-color1, #ff9800);
  --tl-c4: var(--md-purple-300, #ba68c8);
}
@media (prefers-color-scheme: dark) {
  .tl-theme {
    --tl-bg: var(--jp-layout-color0, var(--vscode-editor-background, #1e1e1e));
    --tl-panel: var(--jp-layout-color0, var(--vscode-editor-background, #1e1e1e));
    --tl-track: var(--jp-layout-color2, var(--vscode-editorWidget-background, #2c2c2c));
    --tl-border: var(--jp-border-color2, var(--vscode-editorWidget-border, #3a3a3a));
    --tl-grid: var(--jp-border-color3, var(--vscode-editorIndentGuide-background, rgba(255, 255, 255, 0.08)));
    --tl-fg: var(--jp-ui-font-color1, var(--vscode-editor-foreground, rgba(255, 255, 255, 0.87)));
    --tl-fg-strong: var(--jp-ui-font-color0, var(--vscode-editor-foreground, #ffffff));
    --tl-fg-dim: var(--jp-ui-font-color2, var(--vscode-descriptionForeground, rgba(255, 255, 255, 0.6)));
    --tl-c1: var(--jp-brand-color1, var(--vscode-charts-blue, #4a9eff));
    --tl-c2: var(--jp-warn-color1, var(--vscode-charts-orange, #ffa040));
    --tl-c3: var(--jp-accent-color1, var(--vscode-charts-green, #66bb6a));
    --tl-c4: var(--vscode-charts-purple, #ce93d8);
  }
}
.tl-panel {
  background: var(--tl-panel);
  border: 1px solid var(--tl-border);
  border-radius: var(--tl-radius);
  padding: 8px 10px 6px;
  min-width: 0;
  display: flex;
  flex-direction: column;
  gap: 4px;
  box-sizing: border-box;
}
.tl-panel > * {
  flex: none;
  min-width: 0;
}
.tl-panel[hidden] {
  display: none;
}
.tl-panel-head {
  display: flex;
  flex-wrap: wrap;
  align-items: baseline;
  column-gap: 6px;
  row-gap: 2px;
  min-width: 0;
  white-space: nowrap;
}
.tl-panel-title {
  font-size: 11px;
  font-weight: 600;
  letter-spacing: 0.06em;
  text-transform: uppercase;
  color: var(--tl-fg-dim);
}
.tl-panel-sub {
  font-size: 11px;
  color: var(--tl-fg-dim);
  overflow: hidden;
  text-overflow: ellipsis;
  flex: 1 1 auto;
  min-width: 0;
}
.tl-badges {
  display: inline-flex;
  flex-wrap: wrap;
  gap: 2px 4px;
  min-width: 0;
  max-width: 100%;
}
.tl-badges:empty {
  display: none;
}
.tl-badge {
  font-size: 10px;
  font-weight: 600;
  line-height: 16px;
  padding: 0 6px;
  border-radius: 8px;
  max-width: 100%;
  overflow: hidden;
  text-overflow: ellipsis;
  --tl-badge: var(--tl-warn);
  color: var(--tl-fg-strong);
  background: color-mix(in srgb, var(--tl-badge) 20%, var(--tl-panel));
  border: 1px solid var(--tl-badge);
  letter-spacing: 0.02em;
}
.tl-badge[hidden] {
  display: none;
}
.tl-badge.tl-badge-error,
.tl-badge.tl-badge-ecc {
  --tl-badge: var(--tl-error);
}
.tl-badge.tl-badge-idle {
  --tl-badge: var(--tl-fg-dim);
}
.tl-vendor {
  font-size: 10px;
  font-weight: 600;
  line-height: 14px;
  padding: 0 5px;
  border-radius: 3px;
  border: 1px solid currentColor;
  color: var(--tl-fg-dim);
  flex: none;
}
.tl-vendor[hidden] {
  display: none;
}
.tl-accel.tl-idle .tl-panel-sub {
  color: var(--tl-fg-dim);
}
.tl-headlines {
  display: flex;
  align-items: baseline;
  flex-wrap: wrap;
  column-gap: 14px;
  row-gap: 2px;
  min-height: 28px;
}
.tl-headline {
  display: inline-flex;
  align-items: baseline;
  gap: 4px;
  white-space: nowrap;
  font-variant-numeric: tabular-nums;
  font-size: 12px;
  color: var(--tl-fg);
}
.tl-headline .tl-value {
  font-weight: 600;
}
.tl-headline.tl-big .tl-value {
  font-size: 22px;
  line-height: 26px;
  font-weight: 600;
  color: var(--tl-fg-strong);
  letter-spacing: -0.01em;
}
.tl-caption {
  font-size: 11px;
  color: var(--tl-fg-dim);
}
.tl-swatch {
  display: inline-block;
  width: 8px;
  height: 8px;
  border-radius: 2px;
  background: var(--tl-sw, var(--tl-c1));
  flex: none;
  align-self: center;
}
.tl-swatch.tl-swatch-dash {
  height: 0;
  width: 10px;
  border-radius: 0;
  background: none;
  border-top: 2px dashed var(--tl-sw, var(--tl-fg-dim));
}
.tl-chart {
  min-width: 0;
  position: relative;
}
.tl-chart-head {
  display: flex;
  align-items: baseline;
  gap: 6px;
  min-width: 0;
  font-size: 10px;
  line-height: 12px;
  color: var(--tl-fg-dim);
  white-space: nowrap;
  overflow: hidden;
}
.tl-axis-unit {
  flex: none;
}
.tl-axis-unit:empty {
  display: none;
}
.tl-chart-title {
  font-size: 11px;
  color: var(--tl-fg-dim);
  overflow: hidden;
  text-overflow: ellipsis;
  min-width: 0;
}
.tl-plot {
  width: 100%;
  min-width: 0;
  overflow: hidden;
  position: relative;
}
.tl-plot .uplot {
  font-family: var(--tl-font);
  line-height: 1;
}
.tl-plot .u-cursor-x {
  border-right-color: var(--tl-fg-dim);
}
.tl-legend {
  display: flex;
  flex-wrap: wrap;
  column-gap: 12px;
  font-size: 11px;
  color: var(--tl-fg-dim);
  font-variant-numeric: tabular-nums;
  min-height: 15px;
}
.tl-legend-item {
  display: inline-flex;
  align-items: center;
  gap: 4px;
  white-space: nowrap;
}
.tl-legend-value {
  color: var(--tl-fg);
}
.tl-cores {
  min-width: 0;
}
.tl-cores[hidden] {
  display: none;
}
.tl-cores-canvas {
  display: block;
  width: 100%;
  height: 22px;
  border-radius: 3px;
}
.tl-cores-label {
  font-size: 11px;
  color: var(--tl-fg-dim);
  font-variant-numeric: tabular-nums;
  min-height: 14px;
  margin-top: 2px;
  white-space: nowrap;
  overflow: hidden;
  text-overflow: ellipsis;
}
.tl-hover {
  position: absolute;
  top: 2px;
  left: 44px;
  z-index: 2;
  display: flex;
  flex-direction: column;
  gap: 1px;
  padding: 3px 6px;
  font-size: 11px;
  line-height: 14px;
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
  color: var(--tl-fg);
  background: var(--tl-bg);
  border: 1px solid var(--tl-border);
  border-radius: 4px;
  box-shadow: 0 1px 3px rgba(0, 0, 0, 0.12);
  pointer-events: none;
}
.tl-hover[hidden] {
  display: none;
}
.tl-hover.tl-hover-right {
  left: auto;
  right: 8px;
}
.tl-hover-time {
  color: var(--tl-fg-dim);
}
.tl-hover-item {
  display: inline-flex;
  align-items: center;
  gap: 4px;
}
.tl-headline.tl-mid .tl-value {
  font-size: 15px;
  line-height: 26px;
  color: var(--tl-fg-strong);
}
.tl-headline[hidden] {
  display: none;
}

/* src/sidebar.css */
.tl-sidebar {
  overflow-y: auto;
  background: var(--jp-layout-color1);
  min-width: 200px;
}
.tl-side {
  padding: 6px 8px 12px;
  display: flex;
  flex-direction: column;
  gap: 8px;
}
.tl-side .tl-header {
  display: flex;
  align-items: center;
  gap: 8px;
  flex-wrap: wrap;
}
.tl-side .tl-brand {
  font-weight: 600;
}
.tl-side .tl-status {
  font-size: 11px;
  color: var(--tl-fg-dim);
}
.tl-side .tl-status-error {
  color: var(--tl-error);
}
.tl-side .tl-node-select {
  font-size: 11px;
  max-width: 12em;
}
.tl-side .tl-summary {
  font-size: 11px;
}
.tl-side .tl-facts {
  display: grid;
  grid-template-columns: max-content 1fr;
  gap: 1px 8px;
  margin: 0;
}
.tl-side .tl-facts dt {
  color: var(--tl-fg-dim);
}
.tl-side .tl-facts dd {
  margin: 0;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}
.tl-side .tl-health {
  font-size: 11px;
  color: var(--tl-fg-dim);
}
.tl-side .tl-health[data-status=degraded],
.tl-side .tl-health[data-status=unknown] {
  color: var(--tl-fg);
  border-left: 3px solid var(--tl-warn);
  padding-left: 4px;
}
.tl-side .tl-health {
  display: flex;
  align-items: center;
  gap: 6px;
  flex-wrap: wrap;
}
.tl-diagnose {
  font-size: 11px;
  padding: 0 6px;
  margin-left: auto;
  cursor: pointer;
  color: var(--jp-ui-font-color1);
  background: var(--jp-layout-color2);
  border: 1px solid var(--jp-border-color1);
  border-radius: 3px;
}
.tl-diagnose:disabled {
  cursor: progress;
  opacity: 0.7;
}
.tl-diagnosis {
  font-size: var(--jp-ui-font-size1);
  max-width: 720px;
  color: var(--jp-ui-font-color1);
}
.tl-diagnosis-headline {
  font-weight: 600;
  margin: 0 0 6px;
}
.tl-diagnosis-section {
  font-size: var(--jp-ui-font-size1);
  margin: 10px 0 2px;
  text-transform: capitalize;
}
.tl-diagnosis-list {
  list-style: none;
  margin: 0;
  padding: 0;
}
.tl-finding {
  padding: 2px 0;
}
.tl-finding-line {
  display: flex;
  gap: 6px;
  align-items: baseline;
}
.tl-finding-mark {
  width: 1em;
  flex: none;
  text-align: center;
}
.tl-finding-status {
  flex: none;
  font-size: 10px;
  text-transform: uppercase;
  color: var(--jp-ui-font-color2);
  min-width: 5.5em;
}
.tl-finding-check {
  flex: none;
  font-weight: 600;
}
.tl-finding-found {
  overflow-wrap: anywhere;
}
.tl-finding[data-status=ok] .tl-finding-mark {
  color: var(--jp-success-color1);
}
.tl-finding[data-status=warning] .tl-finding-mark,
.tl-finding[data-status=warning] .tl-finding-status {
  color: var(--jp-warn-color1);
}
.tl-finding[data-status=problem] .tl-finding-mark,
.tl-finding[data-status=problem] .tl-finding-status {
  color: var(--jp-error-color1);
}
.tl-finding[data-status=skipped] {
  color: var(--jp-ui-font-color2);
}
.tl-finding-fix {
  margin: 1px 0 2px calc(1em + 6px);
  font-size: 11px;
  color: var(--jp-ui-font-color2);
  overflow-wrap: anywhere;
}
.tl-finding-fix code {
  font-family: var(--jp-code-font-family);
  color: var(--jp-ui-font-color1);
  white-space: pre-wrap;
}
.tl-side .tl-grid {
  display: flex;
  flex-direction: column;
  gap: 8px;
}
.tl-side .tl-body {
  display: flex;
  flex-direction: column;
  gap: 8px;
}
.tl-side .tl-badge-ecc {
  --tl-badge: var(--tl-error);
}
.tl-side .tl-badge-temp {
  --tl-badge: var(--tl-warn);
}
.tl-side .tl-runs .tl-panel-head {
  font-weight: 600;
}
.tl-side .tl-runs-count {
  font-size: 11px;
  font-weight: normal;
  color: var(--tl-fg-dim);
}
.tl-side .tl-runs-error {
  font-size: 11px;
  color: var(--tl-error);
}
.tl-side .tl-empty code {
  font-family: var(--tl-mono);
  font-style: normal;
}
.tl-side .tl-run-list {
  display: flex;
  flex-direction: column;
}
.tl-side .tl-run {
  border-top: 1px solid var(--tl-border);
  font-size: 12px;
}
.tl-side .tl-run:first-child {
  border-top: none;
}
.tl-side .tl-run-head {
  padding: 4px 2px;
  cursor: pointer;
  display: flex;
  flex-direction: column;
  gap: 1px;
  border-radius: 3px;
}
.tl-side .tl-run-head:hover,
.tl-side .tl-run-open > .tl-run-head {
  background: var(--jp-layout-color2, var(--tl-track));
}
.tl-side .tl-run-head:focus-visible {
  outline: 1px solid var(--jp-brand-color1);
  outline-offset: -1px;
}
.tl-side .tl-run-line {
  display: flex;
  align-items: baseline;
  gap: 6px;
  min-width: 0;
}
.tl-side .tl-run-name {
  font-weight: 600;
  flex: 1;
  min-width: 0;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}
.tl-side .tl-run-duration {
  font-variant-numeric: tabular-nums;
  color: var(--tl-fg-dim);
  font-size: 11px;
  white-space: nowrap;
}
.tl-side .tl-run-sub {
  font-size: 11px;
  color: var(--tl-fg-dim);
}
.tl-side .tl-run-project {
  white-space: nowrap;
  overflow: hidden;
  text-overflow: ellipsis;
  max-width: 40%;
}
.tl-side .tl-run-metrics {
  display: flex;
  gap: 8px;
  min-width: 0;
  overflow: hidden;
  white-space: nowrap;
  margin-left: auto;
}
.tl-side .tl-run-metric {
  font-variant-numeric: tabular-nums;
  color: var(--tl-fg);
}
.tl-side .tl-run-metric-name {
  color: var(--tl-fg-dim);
}
.tl-side .tl-run-badge {
  --tl-state: var(--jp-ui-font-color2, #757575);
  font-size: 10px;
  line-height: 14px;
  padding: 0 6px;
  border-radius: 7px;
  white-space: nowrap;
  color: var(--tl-fg-strong);
  background: color-mix(in srgb, var(--tl-state) 20%, var(--tl-panel));
  box-shadow: inset 0 0 0 1px var(--tl-state);
}
.tl-side .tl-run[data-state=running] .tl-run-badge {
  --tl-state: var(--jp-brand-color1, #1976d2);
  animation: tl-run-pulse 1.6s ease-in-out infinite;
}
.tl-side .tl-run[data-state=finished] .tl-run-badge {
  --tl-state: var(--jp-success-color1, #388e3c);
}
.tl-side .tl-run[data-state=failed] .tl-run-badge {
  --tl-state: var(--jp-error-color1, #d32f2f);
}
.tl-side .tl-run[data-state=crashed] .tl-run-badge {
  --tl-state: var(--jp-warn-color1, #f57c00);
}
@keyframes tl-run-pulse {
  50% {
    opacity: 0.55;
  }
}
@media (prefers-reduced-motion: reduce) {
  .tl-side .tl-run[data-state=running] .tl-run-badge {
    animation: none;
  }
}
.tl-side .tl-run-detail {
  padding: 4px 2px 8px;
  display: flex;
  flex-direction: column;
  gap: 4px;
  font-size: 11px;
}
.tl-side .tl-run-detail[hidden] {
  display: none;
}
.tl-side .tl-run-detail dd[data-fact=command],
.tl-side .tl-run-detail dd[data-fact=cwd],
.tl-side .tl-run-detail dd[data-fact=git] {
  font-family: var(--tl-mono);
}
.tl-side .tl-run-detail dd[data-fact=error] {
  color: var(--tl-error);
  white-space: normal;
}
.tl-side .tl-run-subhead {
  color: var(--tl-fg-dim);
  font-weight: 600;
  margin-top: 2px;
}
.tl-side .tl-run-config dd {
  font-family: var(--tl-mono);
}
.tl-side .tl-run-spark-head {
  display: flex;
  align-items: baseline;
  gap: 6px;
  min-width: 0;
}
.tl-side .tl-run-spark-select {
  font-size: 11px;
  max-width: 10em;
}
.tl-side .tl-run-spark-range {
  color: var(--tl-fg-dim);
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
  overflow: hidden;
  text-overflow: ellipsis;
}
.tl-side .tl-run-spark-svg {
  width: 100%;
  height: 36px;
  display: block;
}
.tl-side .tl-run-spark-svg polyline {
  fill: none;
  stroke: var(--tl-c1);
  stroke-width: 1.5;
}
.tl-side .tl-run-actions {
  display: flex;
  justify-content: flex-end;
}
.tl-side .tl-run-actions[hidden] {
  display: none;
}
.tl-side .tl-run-delete {
  font-size: 11px;
  height: 22px;
  min-height: 0;
  line-height: 20px;
  padding: 0 10px;
}
.tl-side .tl-empty {
  font-size: 11px;
  color: var(--tl-fg-dim);
  padding: 6px 0;
  font-style: italic;
}
.tl-side .tl-cluster .tl-panel-head {
  font-weight: 600;
  display: flex;
  align-items: baseline;
  gap: 6px;
  min-width: 0;
}
.tl-side .tl-cluster-where {
  font-size: 11px;
  font-weight: normal;
  color: var(--tl-fg-dim);
  font-family: var(--tl-mono);
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
  min-width: 0;
}
.tl-side .tl-cluster-line {
  font-size: 11px;
  font-variant-numeric: tabular-nums;
}
.tl-side .tl-cluster-use {
  color: var(--tl-fg-dim);
}
.tl-side .tl-cluster-error {
  font-size: 11px;
  color: var(--tl-error);
}
.tl-side .tl-cluster-error[hidden] {
  display: none;
}
.tl-side .tl-cluster[data-mode=solo] {
  border: none;
  background: none;
  padding: 0;
}
.tl-side .tl-cluster[data-mode=solo] > :not(.tl-cluster-hint) {
  display: none;
}
.tl-side .tl-cluster[data-mode=cluster] > .tl-cluster-hint {
  display: none;
}
.tl-side .tl-cluster-hint {
  font-size: 11px;
  color: var(--tl-fg-dim);
}
.tl-side .tl-cluster-hint code {
  font-family: var(--tl-mono);
}
.tl-side code {
  overflow-wrap: anywhere;
}
.tl-side .tl-node-list {
  display: flex;
  flex-direction: column;
  max-height: 420px;
  overflow-y: auto;
  margin-top: 2px;
}
.tl-side .tl-node {
  border-top: 1px solid var(--tl-border);
  padding: 3px 2px 4px;
  cursor: pointer;
  border-radius: 3px;
  display: flex;
  flex-direction: column;
  gap: 2px;
}
.tl-side .tl-node:first-child {
  border-top: none;
}
.tl-side .tl-node:hover {
  background: var(--jp-layout-color2, var(--tl-track));
  --tl-fg-dim: var(--jp-ui-font-color1, var(--tl-fg));
}
.tl-side .tl-node:focus-visible {
  outline: 1px solid var(--jp-brand-color1);
  outline-offset: -1px;
}
.tl-side .tl-node.tl-node-selected {
  box-shadow: inset 2px 0 0 var(--jp-brand-color1, #1976d2);
  background: var(--jp-layout-color2, var(--tl-track));
  --tl-fg-dim: var(--jp-ui-font-color1, var(--tl-fg));
}
.tl-side .tl-node-line {
  display: flex;
  align-items: baseline;
  gap: 6px;
  min-width: 0;
  font-size: 12px;
}
.tl-side .tl-node-name {
  font-weight: 600;
  min-width: 0;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}
.tl-side .tl-node-role {
  font-size: 11px;
  color: var(--tl-fg-dim);
  white-space: nowrap;
}
.tl-side .tl-node-res {
  font-size: 11px;
  color: var(--tl-fg-dim);
  margin-left: auto;
  white-space: nowrap;
  overflow: hidden;
  text-overflow: ellipsis;
  min-width: 0;
}
.tl-side .tl-node-badge {
  --tl-state: var(--jp-success-color1, #388e3c);
  align-self: center;
  font-size: 10px;
  line-height: 14px;
  padding: 0 6px;
  border-radius: 7px;
  white-space: nowrap;
  color: var(--tl-fg-strong);
  background: color-mix(in srgb, var(--tl-state) 20%, var(--tl-panel));
  box-shadow: inset 0 0 0 1px var(--tl-state);
}
.tl-side .tl-node:is([data-status=down], .tl-side [data-status=stale]) .tl-node-badge {
  --tl-state: var(--jp-error-color1, #d32f2f);
}
.tl-side .tl-node:is([data-status=down], .tl-side [data-status=stale]) > .tl-node-sparks,
.tl-side .tl-node:is([data-status=down], .tl-side [data-status=stale]) .tl-node-name,
.tl-side .tl-node:is([data-status=down], .tl-side [data-status=stale]) .tl-node-role,
.tl-side .tl-node:is([data-status=down], .tl-side [data-status=stale]) .tl-node-res {
  opacity: 0.5;
}
.tl-side .tl-node-sparks {
  display: grid;
  grid-template-columns: repeat(3, minmax(0, 1fr));
  gap: 6px;
}
.tl-side .tl-node-spark {
  min-width: 0;
}
.tl-side .tl-node-spark-top {
  display: flex;
  justify-content: space-between;
  gap: 4px;
  font-size: 10px;
  line-height: 12px;
}
.tl-side .tl-node-spark-label {
  color: var(--tl-fg-dim);
}
.tl-side .tl-node-spark-value {
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
}
.tl-side .tl-node-spark-svg {
  width: 100%;
  height: 18px;
  display: block;
  background: var(--jp-layout-color2, var(--tl-track));
  border-radius: 2px;
}
.tl-side .tl-node-spark-svg path {
  fill: none;
  stroke-width: 1.25;
  stroke-linejoin: round;
}
.tl-side .tl-node-spark[data-spark=cpu] path {
  stroke: var(--tl-c1);
}
.tl-side .tl-node-spark[data-spark=mem] path {
  stroke: var(--tl-c3);
}
.tl-side .tl-node-spark[data-spark=gpu] path {
  stroke: var(--tl-c2);
}
.tl-side .tl-node-spark-none {
  visibility: hidden;
}
.tl-side .tl-kernels .tl-panel-head {
  font-weight: 600;
  display: flex;
  flex-wrap: wrap;
  align-items: baseline;
  gap: 0 6px;
  min-width: 0;
}
.tl-side .tl-kernels-count {
  font-size: 11px;
  font-weight: normal;
  color: var(--tl-fg-dim);
}
.tl-side .tl-kernels-limit {
  margin-left: auto;
  font-size: 11px;
  font-weight: normal;
  color: var(--tl-fg-dim);
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
  min-width: 0;
  overflow: hidden;
  text-overflow: ellipsis;
}
.tl-side .tl-kernels-notes {
  font-size: 11px;
  color: var(--tl-fg-dim);
}
.tl-side .tl-kernels-error {
  font-size: 11px;
  color: var(--tl-error);
}
.tl-side .tl-kernels-notes[hidden],
.tl-side .tl-kernels-error[hidden],
.tl-side .tl-empty[hidden] {
  display: none;
}
.tl-side .tl-kernel-list {
  display: flex;
  flex-direction: column;
  max-height: 360px;
  overflow-y: auto;
}
.tl-side .tl-kernel {
  border-top: 1px solid var(--tl-border);
  padding: 3px 2px 4px;
  border-radius: 3px;
  font-size: 12px;
  display: grid;
  grid-template-columns: minmax(0, 1fr) 30%;
  grid-template-areas: "line line" "sub spark" "bar spark";
  column-gap: 8px;
  row-gap: 2px;
  align-items: center;
}
.tl-side .tl-kernel > .tl-kernel-line:first-child {
  grid-area: line;
}
.tl-side .tl-kernel > .tl-kernel-sub {
  grid-area: sub;
}
.tl-side .tl-kernel > .tl-kernel-bar {
  grid-area: bar;
}
.tl-side .tl-kernel > .tl-kernel-spark {
  grid-area: spark;
}
.tl-side .tl-kernel:first-child {
  border-top: none;
}
.tl-side .tl-kernel[role=button] {
  cursor: pointer;
}
.tl-side .tl-kernel[role=button]:hover {
  background: var(--jp-layout-color2, var(--tl-track));
}
.tl-side .tl-kernel:focus-visible {
  outline: 1px solid var(--jp-brand-color1);
  outline-offset: -1px;
}
.tl-side .tl-kernel-line {
  display: flex;
  align-items: baseline;
  gap: 6px;
  min-width: 0;
}
.tl-side .tl-kernel-sub {
  font-size: 11px;
}
.tl-side .tl-kernel-dot {
  --tl-state: var(--jp-ui-font-color2, #757575);
  flex: none;
  align-self: center;
  width: 8px;
  height: 8px;
  border-radius: 50%;
  background: var(--tl-state);
}
.tl-side .tl-kernel[data-state=idle] .tl-kernel-dot {
  --tl-state: var(--tl-ok);
}
.tl-side .tl-kernel[data-state=busy] .tl-kernel-dot {
  --tl-state: var(--tl-warn);
}
.tl-side .tl-kernel[data-state=starting] .tl-kernel-dot,
.tl-side .tl-kernel[data-state=restarting] .tl-kernel-dot {
  --tl-state: var(--tl-c1);
}
.tl-side .tl-kernel[data-state=dead] .tl-kernel-dot {
  --tl-state: var(--tl-error);
}
.tl-side .tl-kernel-name {
  font-weight: 600;
  flex: 1;
  min-width: 0;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}
.tl-side .tl-kernel-state {
  font-size: 11px;
  color: var(--tl-fg-dim);
  white-space: nowrap;
}
.tl-side .tl-kernel[data-state=dead] .tl-kernel-state {
  color: var(--tl-error);
}
.tl-side .tl-kernel-cpu {
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
  min-width: 6.5em;
  text-align: right;
}
.tl-side .tl-kernel-mem {
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
  overflow: hidden;
  text-overflow: ellipsis;
  min-width: 0;
}
.tl-side .tl-kernel[data-sampled=false] .tl-kernel-mem {
  color: var(--tl-fg-dim);
  font-style: italic;
}
.tl-side .tl-kernel-gpu {
  margin-left: auto;
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
}
.tl-side .tl-kernel-bar {
  height: 3px;
  border-radius: 2px;
  background: var(--jp-layout-color2, var(--tl-track));
  overflow: hidden;
}
.tl-side .tl-kernel-bar[hidden] {
  display: none;
}
.tl-side .tl-kernel-bar-fill {
  height: 100%;
  width: 0;
  background: var(--tl-c1);
  transition: width 0.3s ease-out;
}
.tl-side .tl-kernel-bar[data-level=warn] .tl-kernel-bar-fill {
  background: var(--tl-warn);
}
.tl-side .tl-kernel-bar[data-level=error] .tl-kernel-bar-fill {
  background: var(--tl-error);
}
.tl-side .tl-kernel-spark {
  width: 100%;
  height: 20px;
  display: block;
  align-self: end;
  background: var(--jp-layout-color2, var(--tl-track));
  border-radius: 2px;
}
.tl-side .tl-kernel-spark path {
  fill: none;
  stroke: var(--tl-c3);
  stroke-width: 1.25;
  stroke-linejoin: round;
}
@media (prefers-reduced-motion: reduce) {
  .tl-side .tl-kernel-bar-fill {
    transition: none;
  }
}
`,""]),l.d(e,{},{A:i})},314(t){t.exports=function(t){var e=[];return e.toString=function(){return this.map(function(e){var l="",r=void 0!==e[5];return e[4]&&(l+="@supports (".concat(e[4],") {")),e[2]&&(l+="@media ".concat(e[2]," {")),r&&(l+="@layer".concat(e[5].length>0?" ".concat(e[5]):""," {")),l+=t(e),r&&(l+="}"),e[2]&&(l+="}"),e[4]&&(l+="}"),l}).join("")},e.i=function(t,l,r,o,a){"string"==typeof t&&(t=[[null,t,void 0]]);var i={};if(r)for(var n=0;n<this.length;n++){var d=this[n][0];null!=d&&(i[d]=!0)}for(var s=0;s<t.length;s++){var p=[].concat(t[s]);r&&i[p[0]]||(void 0!==a&&(void 0===p[5]||(p[1]="@layer".concat(p[5].length>0?" ".concat(p[5]):""," {").concat(p[1],"}")),p[5]=a),l&&(p[2]&&(p[1]="@media ".concat(p[2]," {").concat(p[1],"}")),p[2]=l),o&&(p[4]?(p[1]="@supports (".concat(p[4],") {").concat(p[1],"}"),p[4]=o):p[4]="".concat(o)),e.push(p))}},e}},601(t){t.exports=function(t){return t[1]}},495(t,e,l){l.r(e);var r=l(72),o=l.n(r),a=l(825),i=l.n(a),n=l(659),d=l.n(n),s=l(56),p=l.n(s),c=l(540),f=l.n(c),u=l(113),g=l.n(u),v=l(920),h={};h.styleTagTransform=g(),h.setAttributes=p(),h.insert=d().bind(null,"head"),h.domAPI=i(),h.insertStyleElement=f(),o()(v.A,h);let x=v.A&&v.A.locals?v.A.locals:void 0;l.d(e,{},{default:x})},72(t){var e=[];function l(t){for(var l=-1,r=0;r<e.length;r++)if(e[r].identifier===t){l=r;break}return l}function r(t,r){for(var o={},a=[],i=0;i<t.length;i++){var n=t[i],d=r.base?n[0]+r.base:n[0],s=o[d]||0,p="".concat(d," ").concat(s);o[d]=s+1;var c=l(p),f={css:n[1],media:n[2],sourceMap:n[3],supports:n[4],layer:n[5]};if(-1!==c)e[c].references++,e[c].updater(f);else{var u=function(t,e){var l=e.domAPI(e);return l.update(t),function(e){e?(e.css!==t.css||e.media!==t.media||e.sourceMap!==t.sourceMap||e.supports!==t.supports||e.layer!==t.layer)&&l.update(t=e):l.remove()}}(f,r);r.byIndex=i,e.splice(i,0,{identifier:p,updater:u,references:1})}a.push(p)}return a}t.exports=function(t,o){var a=r(t=t||[],o=o||{});return function(t){t=t||[];for(var i=0;i<a.length;i++){var n=l(a[i]);e[n].references--}for(var d=r(t,o),s=0;s<a.length;s++){var p=l(a[s]);0===e[p].references&&(e[p].updater(),e.splice(p,1))}a=d}}},659(t){var e={};t.exports=function(t,l){var r=function(t){if(void 0===e[t]){var l=document.querySelector(t);if(window.HTMLIFrameElement&&l instanceof window.HTMLIFrameElement)try{l=l.contentDocument.head}catch(t){l=null}e[t]=l}return e[t]}(t);if(!r)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");r.appendChild(l)}},540(t){t.exports=function(t){var e=document.createElement("style");return t.setAttributes(e,t.attributes),t.insert(e,t.options),e}},56(t,e,l){t.exports=function(t){var e=l.nc;e&&t.setAttribute("nonce",e)}},825(t){t.exports=function(t){if("u"<typeof document)return{update:function(){},remove:function(){}};var e=t.insertStyleElement(t);return{update:function(l){var r,o,a;r="",l.supports&&(r+="@supports (".concat(l.supports,") {")),l.media&&(r+="@media ".concat(l.media," {")),(o=void 0!==l.layer)&&(r+="@layer".concat(l.layer.length>0?" ".concat(l.layer):""," {")),r+=l.css,o&&(r+="}"),l.media&&(r+="}"),l.supports&&(r+="}"),(a=l.sourceMap)&&"u">typeof btoa&&(r+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),t.styleTagTransform(r,e,t.options)},remove:function(){var t;null===(t=e).parentNode||t.parentNode.removeChild(t)}}}},113(t){t.exports=function(t,e){if(e.styleSheet)e.styleSheet.cssText=t;else{for(;e.firstChild;)e.removeChild(e.firstChild);e.appendChild(document.createTextNode(t))}}}}]);