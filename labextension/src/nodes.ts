// The sidebar's node selector: which node the host section (summary and charts) shows.
// It lists every node of `cluster/info` (those not live marked with their status); this
// server's own node (role "local") is the first shown, and the only one `system/*` answers
// for: any other is a cluster node, whose charts follow the cluster topics.

import { h } from "../../js/charts";
import { isLive } from "../../js/node_status";
import type { ClusterInfo } from "./cluster";

export class NodeSelector {
  readonly el: HTMLSelectElement;
  #node = "";
  /** This server's own node: the only one `system/*` answers for; others come from the cluster. */
  #local = "";
  /** The options listed, as a key: rebuilt only when they change. */
  #options = "";

  /** `onChange`: a node picked in the dropdown. */
  constructor(onChange: (node: string) => void) {
    this.el = h("select", "tl-node-select", { "aria-label": "node shown by the charts", "data-field": "node" });
    this.el.addEventListener("change", () => onChange(this.el.value));
  }

  /** The node shown ("" before `cluster/info` answered). */
  get node(): string {
    return this.#node;
  }

  /** A cluster node other than this server's host is shown: charts fed by the cluster topics. */
  get remote(): boolean {
    return !!this.#local && !!this.#node && this.#node !== this.#local;
  }

  /** The nodes of `cluster/info`: the first answer selects this server's own node. */
  update(info: ClusterInfo): void {
    const nodes = info.nodes ?? [];
    this.#local = nodes.find((n) => n.role === "local")?.node ?? nodes[0]?.node ?? "";
    const names = nodes.map((n) => n.node);
    if (!this.#node) this.#node = this.#local;
    const options: [string, string][] = nodes.map((n) => [n.node, isLive(n.status) ? n.node : `${n.node} (${n.status})`]);
    // a selected node that left the cluster stays selected (its charts stop) until another is picked
    if (this.#node && !names.includes(this.#node)) options.push([this.#node, `${this.#node} (left)`]);
    // rebuilt only when something changed: an open dropdown is not closed every few seconds
    const key = JSON.stringify(options);
    if (key !== this.#options) {
      this.#options = key;
      this.el.textContent = "";
      for (const [value, label] of options) this.el.append(h("option", undefined, { value }, label));
    }
    this.el.value = this.#node;
    // never disabled: a disabled select leaves the tab order, and the keyboard could not
    // even read which node is shown (with one node there is nothing else to pick)
    this.el.title = nodes.length < 2 ? "one node (clusters list their nodes here)" : "node shown by the charts below";
  }

  /** Shows `node` in the dropdown; true when it differs from the node shown so far. */
  select(node: string): boolean {
    this.el.value = node;
    if (node === this.#node) return false;
    this.#node = node;
    return true;
  }
}
