"use strict";(self.rspackChunktracklab_jupyter=self.rspackChunktracklab_jupyter||[]).push([[812],{920(t,e,r){var o=r(601),l=r.n(o),a=r(314),n=(r.n(a))()(l());n.push([t.id,`/* ../js/node_modules/uplot/dist/uPlot.min.css */
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
  --tl-c2: var(--jp-warn-color1, var(--vscode-charts-orange, #f57c00));
  --tl-c3: var(--jp-accent-color1, var(--vscode-charts-green, #388e3c));
  --tl-c4: var(--vscode-charts-purple, #9c27b0);
  --tl-warn: var(--jp-warn-color1, var(--vscode-editorWarning-foreground, #f57c00));
  --tl-error: var(--jp-error-color1, var(--vscode-editorError-foreground, #d32f2f));
  --tl-ok: var(--jp-success-color1, var(--vscode-charts-green, #388e3c));
  --tl-radius: 6px;
  font-family: var(--tl-font);
  color: var(--tl-fg);
}
body[data-jp-theme-light=false] .tl-theme {
  --tl-c4: #ce93d8;
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
.tl-panel[hidden] {
  display: none;
}
.tl-panel-head {
  display: flex;
  align-items: baseline;
  gap: 6px;
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
  gap: 4px;
  flex: none;
}
.tl-badge {
  font-size: 10px;
  font-weight: 600;
  line-height: 16px;
  padding: 0 6px;
  border-radius: 8px;
  color: #fff;
  background: var(--tl-warn);
  letter-spacing: 0.02em;
}
.tl-badge[hidden] {
  display: none;
}
.tl-badge.tl-badge-error,
.tl-badge.tl-badge-ecc {
  background: var(--tl-error);
}
.tl-badge.tl-badge-idle {
  background: var(--tl-fg-dim);
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
.tl-chart-title {
  font-size: 11px;
  color: var(--tl-fg-dim);
  margin: 2px 0 0;
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
  min-width: 260px;
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
.tl-node-select {
  font-size: 11px;
  max-width: 12em;
}
.tl-summary {
  font-size: 11px;
}
.tl-facts {
  display: grid;
  grid-template-columns: max-content 1fr;
  gap: 1px 8px;
  margin: 0;
}
.tl-facts dt {
  color: var(--tl-fg-dim);
}
.tl-facts dd {
  margin: 0;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}
.tl-health {
  font-size: 11px;
  color: var(--tl-fg-dim);
}
.tl-health[data-status=degraded],
.tl-health[data-status=unknown] {
  color: var(--tl-warn);
}
.tl-health {
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
.tl-badge-ecc {
  background: var(--tl-error);
  color: #fff;
}
.tl-badge-temp {
  background: var(--tl-warn);
  color: #fff;
}
.tl-runs .tl-panel-head {
  font-weight: 600;
}
.tl-runs-count {
  font-size: 11px;
  font-weight: normal;
  color: var(--tl-fg-dim);
}
.tl-runs-error {
  font-size: 11px;
  color: var(--tl-error);
}
.tl-empty code {
  font-family: var(--tl-mono);
  font-style: normal;
}
.tl-run-list {
  display: flex;
  flex-direction: column;
}
.tl-run {
  border-top: 1px solid var(--tl-border);
  font-size: 12px;
}
.tl-run:first-child {
  border-top: none;
}
.tl-run-head {
  padding: 4px 2px;
  cursor: pointer;
  display: flex;
  flex-direction: column;
  gap: 1px;
  border-radius: 3px;
}
.tl-run-head:hover,
.tl-run-open > .tl-run-head {
  background: var(--jp-layout-color2, var(--tl-track));
}
.tl-run-head:focus-visible {
  outline: 1px solid var(--jp-brand-color1);
  outline-offset: -1px;
}
.tl-run-line {
  display: flex;
  align-items: baseline;
  gap: 6px;
  min-width: 0;
}
.tl-run-name {
  font-weight: 600;
  flex: 1;
  min-width: 0;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}
.tl-run-duration {
  font-variant-numeric: tabular-nums;
  color: var(--tl-fg-dim);
  font-size: 11px;
  white-space: nowrap;
}
.tl-run-sub {
  font-size: 11px;
  color: var(--tl-fg-dim);
}
.tl-run-project {
  white-space: nowrap;
  overflow: hidden;
  text-overflow: ellipsis;
  max-width: 40%;
}
.tl-run-metrics {
  display: flex;
  gap: 8px;
  min-width: 0;
  overflow: hidden;
  white-space: nowrap;
  margin-left: auto;
}
.tl-run-metric {
  font-variant-numeric: tabular-nums;
  color: var(--tl-fg);
}
.tl-run-metric-name {
  color: var(--tl-fg-dim);
}
.tl-run-badge {
  --tl-state: var(--jp-ui-font-color2, #757575);
  font-size: 10px;
  line-height: 14px;
  padding: 0 6px;
  border-radius: 7px;
  white-space: nowrap;
  color: var(--jp-ui-inverse-font-color1, #fff);
  background: var(--tl-state);
}
.tl-run[data-state=running] .tl-run-badge {
  --tl-state: var(--jp-brand-color1, #1976d2);
  animation: tl-run-pulse 1.6s ease-in-out infinite;
}
.tl-run[data-state=finished] .tl-run-badge {
  --tl-state: var(--jp-success-color1, #388e3c);
}
.tl-run[data-state=failed] .tl-run-badge {
  --tl-state: var(--jp-error-color1, #d32f2f);
}
.tl-run[data-state=crashed] .tl-run-badge {
  --tl-state: var(--jp-warn-color1, #f57c00);
}
@keyframes tl-run-pulse {
  50% {
    opacity: 0.55;
  }
}
@media (prefers-reduced-motion: reduce) {
  .tl-run[data-state=running] .tl-run-badge {
    animation: none;
  }
}
.tl-run-detail {
  padding: 4px 2px 8px;
  display: flex;
  flex-direction: column;
  gap: 4px;
  font-size: 11px;
}
.tl-run-detail[hidden] {
  display: none;
}
.tl-run-detail dd[data-fact=command],
.tl-run-detail dd[data-fact=cwd],
.tl-run-detail dd[data-fact=git] {
  font-family: var(--tl-mono);
}
.tl-run-detail dd[data-fact=error] {
  color: var(--tl-error);
  white-space: normal;
}
.tl-run-subhead {
  color: var(--tl-fg-dim);
  font-weight: 600;
  margin-top: 2px;
}
.tl-run-config dd {
  font-family: var(--tl-mono);
}
.tl-run-spark-head {
  display: flex;
  align-items: baseline;
  gap: 6px;
  min-width: 0;
}
.tl-run-spark-select {
  font-size: 11px;
  max-width: 10em;
}
.tl-run-spark-range {
  color: var(--tl-fg-dim);
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
  overflow: hidden;
  text-overflow: ellipsis;
}
.tl-run-spark-svg {
  width: 100%;
  height: 36px;
  display: block;
}
.tl-run-spark-svg polyline {
  fill: none;
  stroke: var(--tl-c1);
  stroke-width: 1.5;
}
.tl-run-actions {
  display: flex;
  justify-content: flex-end;
}
.tl-run-actions[hidden] {
  display: none;
}
.tl-side .tl-run-delete {
  font-size: 11px;
  height: 22px;
  min-height: 0;
  line-height: 20px;
  padding: 0 10px;
}
.tl-empty {
  font-size: 11px;
  color: var(--tl-fg-dim);
  padding: 6px 0;
  font-style: italic;
}
.tl-cluster .tl-panel-head {
  font-weight: 600;
  display: flex;
  align-items: baseline;
  gap: 6px;
  min-width: 0;
}
.tl-cluster-where {
  font-size: 11px;
  font-weight: normal;
  color: var(--tl-fg-dim);
  font-family: var(--tl-mono);
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
  min-width: 0;
}
.tl-cluster-line {
  font-size: 11px;
  font-variant-numeric: tabular-nums;
}
.tl-cluster-use {
  color: var(--tl-fg-dim);
}
.tl-cluster-error {
  font-size: 11px;
  color: var(--tl-error);
}
.tl-cluster-error[hidden] {
  display: none;
}
.tl-cluster[data-mode=solo] {
  border: none;
  background: none;
  padding: 0;
}
.tl-cluster[data-mode=solo] > :not(.tl-cluster-hint) {
  display: none;
}
.tl-cluster[data-mode=cluster] > .tl-cluster-hint {
  display: none;
}
.tl-cluster-hint {
  font-size: 11px;
  color: var(--tl-fg-dim);
}
.tl-cluster-hint code {
  font-family: var(--tl-mono);
}
.tl-node-list {
  display: flex;
  flex-direction: column;
  max-height: 420px;
  overflow-y: auto;
  margin-top: 2px;
}
.tl-node {
  border-top: 1px solid var(--tl-border);
  padding: 3px 2px 4px;
  cursor: pointer;
  border-radius: 3px;
  display: flex;
  flex-direction: column;
  gap: 2px;
}
.tl-node:first-child {
  border-top: none;
}
.tl-node:hover {
  background: var(--jp-layout-color2, var(--tl-track));
}
.tl-node:focus-visible {
  outline: 1px solid var(--jp-brand-color1);
  outline-offset: -1px;
}
.tl-node.tl-node-selected {
  box-shadow: inset 2px 0 0 var(--jp-brand-color1, #1976d2);
  background: var(--jp-layout-color2, var(--tl-track));
}
.tl-node-line {
  display: flex;
  align-items: baseline;
  gap: 6px;
  min-width: 0;
  font-size: 12px;
}
.tl-node-name {
  font-weight: 600;
  min-width: 0;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}
.tl-node-role {
  font-size: 11px;
  color: var(--tl-fg-dim);
  white-space: nowrap;
}
.tl-node-res {
  font-size: 11px;
  color: var(--tl-fg-dim);
  margin-left: auto;
  white-space: nowrap;
  overflow: hidden;
  text-overflow: ellipsis;
  min-width: 0;
}
.tl-node-badge {
  --tl-state: var(--jp-success-color1, #388e3c);
  align-self: center;
  font-size: 10px;
  line-height: 14px;
  padding: 0 6px;
  border-radius: 7px;
  white-space: nowrap;
  color: var(--jp-ui-inverse-font-color1, #fff);
  background: var(--tl-state);
}
.tl-node:is([data-status=down], [data-status=stale]) .tl-node-badge {
  --tl-state: var(--jp-error-color1, #d32f2f);
}
.tl-node:is([data-status=down], [data-status=stale]) > .tl-node-sparks,
.tl-node:is([data-status=down], [data-status=stale]) .tl-node-name,
.tl-node:is([data-status=down], [data-status=stale]) .tl-node-role,
.tl-node:is([data-status=down], [data-status=stale]) .tl-node-res {
  opacity: 0.5;
}
.tl-node-sparks {
  display: grid;
  grid-template-columns: repeat(3, minmax(0, 1fr));
  gap: 6px;
}
.tl-node-spark {
  min-width: 0;
}
.tl-node-spark-top {
  display: flex;
  justify-content: space-between;
  gap: 4px;
  font-size: 10px;
  line-height: 12px;
}
.tl-node-spark-label {
  color: var(--tl-fg-dim);
}
.tl-node-spark-value {
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
}
.tl-node-spark-svg {
  width: 100%;
  height: 18px;
  display: block;
  background: var(--jp-layout-color2, var(--tl-track));
  border-radius: 2px;
}
.tl-node-spark-svg path {
  fill: none;
  stroke-width: 1.25;
  stroke-linejoin: round;
}
.tl-node-spark[data-spark=cpu] path {
  stroke: var(--tl-c1);
}
.tl-node-spark[data-spark=mem] path {
  stroke: var(--tl-c3);
}
.tl-node-spark[data-spark=gpu] path {
  stroke: var(--tl-c2);
}
.tl-node-spark-none {
  visibility: hidden;
}
.tl-kernels .tl-panel-head {
  font-weight: 600;
  display: flex;
  align-items: baseline;
  gap: 6px;
  min-width: 0;
}
.tl-kernels-count {
  font-size: 11px;
  font-weight: normal;
  color: var(--tl-fg-dim);
}
.tl-kernels-limit {
  margin-left: auto;
  font-size: 11px;
  font-weight: normal;
  color: var(--tl-fg-dim);
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
}
.tl-kernels-notes {
  font-size: 11px;
  color: var(--tl-fg-dim);
}
.tl-kernels-error {
  font-size: 11px;
  color: var(--tl-error);
}
.tl-kernels-notes[hidden],
.tl-kernels-error[hidden],
.tl-empty[hidden] {
  display: none;
}
.tl-kernel-list {
  display: flex;
  flex-direction: column;
  max-height: 360px;
  overflow-y: auto;
}
.tl-kernel {
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
.tl-kernel > .tl-kernel-line:first-child {
  grid-area: line;
}
.tl-kernel > .tl-kernel-sub {
  grid-area: sub;
}
.tl-kernel > .tl-kernel-bar {
  grid-area: bar;
}
.tl-kernel > .tl-kernel-spark {
  grid-area: spark;
}
.tl-kernel:first-child {
  border-top: none;
}
.tl-kernel[role=button] {
  cursor: pointer;
}
.tl-kernel[role=button]:hover {
  background: var(--jp-layout-color2, var(--tl-track));
}
.tl-kernel:focus-visible {
  outline: 1px solid var(--jp-brand-color1);
  outline-offset: -1px;
}
.tl-kernel-line {
  display: flex;
  align-items: baseline;
  gap: 6px;
  min-width: 0;
}
.tl-kernel-sub {
  font-size: 11px;
}
.tl-kernel-dot {
  --tl-state: var(--jp-ui-font-color2, #757575);
  flex: none;
  align-self: center;
  width: 8px;
  height: 8px;
  border-radius: 50%;
  background: var(--tl-state);
}
.tl-kernel[data-state=idle] .tl-kernel-dot {
  --tl-state: var(--tl-ok);
}
.tl-kernel[data-state=busy] .tl-kernel-dot {
  --tl-state: var(--tl-warn);
}
.tl-kernel[data-state=starting] .tl-kernel-dot,
.tl-kernel[data-state=restarting] .tl-kernel-dot {
  --tl-state: var(--tl-c1);
}
.tl-kernel[data-state=dead] .tl-kernel-dot {
  --tl-state: var(--tl-error);
}
.tl-kernel-name {
  font-weight: 600;
  flex: 1;
  min-width: 0;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}
.tl-kernel-state {
  font-size: 11px;
  color: var(--tl-fg-dim);
  white-space: nowrap;
}
.tl-kernel[data-state=dead] .tl-kernel-state {
  color: var(--tl-error);
}
.tl-kernel-cpu {
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
  min-width: 6.5em;
  text-align: right;
}
.tl-kernel-mem {
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
  overflow: hidden;
  text-overflow: ellipsis;
  min-width: 0;
}
.tl-kernel[data-sampled=false] .tl-kernel-mem {
  color: var(--tl-fg-dim);
  font-style: italic;
}
.tl-kernel-gpu {
  margin-left: auto;
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
}
.tl-kernel-bar {
  height: 3px;
  border-radius: 2px;
  background: var(--jp-layout-color2, var(--tl-track));
  overflow: hidden;
}
.tl-kernel-bar[hidden] {
  display: none;
}
.tl-kernel-bar-fill {
  height: 100%;
  width: 0;
  background: var(--tl-c1);
  transition: width 0.3s ease-out;
}
.tl-kernel-bar[data-level=warn] .tl-kernel-bar-fill {
  background: var(--tl-warn);
}
.tl-kernel-bar[data-level=error] .tl-kernel-bar-fill {
  background: var(--tl-error);
}
.tl-kernel-spark {
  width: 100%;
  height: 20px;
  display: block;
  align-self: end;
  background: var(--jp-layout-color2, var(--tl-track));
  border-radius: 2px;
}
.tl-kernel-spark path {
  fill: none;
  stroke: var(--tl-c3);
  stroke-width: 1.25;
  stroke-linejoin: round;
}
@media (prefers-reduced-motion: reduce) {
  .tl-kernel-bar-fill {
    transition: none;
  }
}
`,""]),r.d(e,{},{A:n})},314(t){t.exports=function(t){var e=[];return e.toString=function(){return this.map(function(e){var r="",o=void 0!==e[5];return e[4]&&(r+="@supports (".concat(e[4],") {")),e[2]&&(r+="@media ".concat(e[2]," {")),o&&(r+="@layer".concat(e[5].length>0?" ".concat(e[5]):""," {")),r+=t(e),o&&(r+="}"),e[2]&&(r+="}"),e[4]&&(r+="}"),r}).join("")},e.i=function(t,r,o,l,a){"string"==typeof t&&(t=[[null,t,void 0]]);var n={};if(o)for(var i=0;i<this.length;i++){var d=this[i][0];null!=d&&(n[d]=!0)}for(var s=0;s<t.length;s++){var p=[].concat(t[s]);o&&n[p[0]]||(void 0!==a&&(void 0===p[5]||(p[1]="@layer".concat(p[5].length>0?" ".concat(p[5]):""," {").concat(p[1],"}")),p[5]=a),r&&(p[2]&&(p[1]="@media ".concat(p[2]," {").concat(p[1],"}")),p[2]=r),l&&(p[4]?(p[1]="@supports (".concat(p[4],") {").concat(p[1],"}"),p[4]=l):p[4]="".concat(l)),e.push(p))}},e}},601(t){t.exports=function(t){return t[1]}},495(t,e,r){r.r(e);var o=r(72),l=r.n(o),a=r(825),n=r.n(a),i=r(659),d=r.n(i),s=r(56),p=r.n(s),c=r(540),u=r.n(c),f=r(113),g=r.n(f),v=r(920),h={};h.styleTagTransform=g(),h.setAttributes=p(),h.insert=d().bind(null,"head"),h.domAPI=n(),h.insertStyleElement=u(),l()(v.A,h);let m=v.A&&v.A.locals?v.A.locals:void 0;r.d(e,{},{default:m})},72(t){var e=[];function r(t){for(var r=-1,o=0;o<e.length;o++)if(e[o].identifier===t){r=o;break}return r}function o(t,o){for(var l={},a=[],n=0;n<t.length;n++){var i=t[n],d=o.base?i[0]+o.base:i[0],s=l[d]||0,p="".concat(d," ").concat(s);l[d]=s+1;var c=r(p),u={css:i[1],media:i[2],sourceMap:i[3],supports:i[4],layer:i[5]};if(-1!==c)e[c].references++,e[c].updater(u);else{var f=function(t,e){var r=e.domAPI(e);return r.update(t),function(e){e?(e.css!==t.css||e.media!==t.media||e.sourceMap!==t.sourceMap||e.supports!==t.supports||e.layer!==t.layer)&&r.update(t=e):r.remove()}}(u,o);o.byIndex=n,e.splice(n,0,{identifier:p,updater:f,references:1})}a.push(p)}return a}t.exports=function(t,l){var a=o(t=t||[],l=l||{});return function(t){t=t||[];for(var n=0;n<a.length;n++){var i=r(a[n]);e[i].references--}for(var d=o(t,l),s=0;s<a.length;s++){var p=r(a[s]);0===e[p].references&&(e[p].updater(),e.splice(p,1))}a=d}}},659(t){var e={};t.exports=function(t,r){var o=function(t){if(void 0===e[t]){var r=document.querySelector(t);if(window.HTMLIFrameElement&&r instanceof window.HTMLIFrameElement)try{r=r.contentDocument.head}catch(t){r=null}e[t]=r}return e[t]}(t);if(!o)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");o.appendChild(r)}},540(t){t.exports=function(t){var e=document.createElement("style");return t.setAttributes(e,t.attributes),t.insert(e,t.options),e}},56(t,e,r){t.exports=function(t){var e=r.nc;e&&t.setAttribute("nonce",e)}},825(t){t.exports=function(t){if("u"<typeof document)return{update:function(){},remove:function(){}};var e=t.insertStyleElement(t);return{update:function(r){var o,l,a;o="",r.supports&&(o+="@supports (".concat(r.supports,") {")),r.media&&(o+="@media ".concat(r.media," {")),(l=void 0!==r.layer)&&(o+="@layer".concat(r.layer.length>0?" ".concat(r.layer):""," {")),o+=r.css,l&&(o+="}"),r.media&&(o+="}"),r.supports&&(o+="}"),(a=r.sourceMap)&&"u">typeof btoa&&(o+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(a))))," */")),t.styleTagTransform(o,e,t.options)},remove:function(){var t;null===(t=e).parentNode||t.parentNode.removeChild(t)}}}},113(t){t.exports=function(t,e){if(e.styleSheet)e.styleSheet.cssText=t;else{for(;e.firstChild;)e.removeChild(e.firstChild);e.appendChild(document.createTextNode(t))}}}}]);