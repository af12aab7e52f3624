// A node's status, the one vocabulary of docs/CLUSTER.md ("Node status"), shared by the
// widget's cluster view and the sidebar's cluster section: `up`, `starting`, `stale`, `down`.

export type NodeStatus = "up" | "starting" | "stale" | "down";

/**
 * Whether a node in this status is live (its values current, counted in the totals): `up`,
 * or this host `starting`. A status not known yet counts as `up` (the row exists because
 * the node has a sample).
 */
export function isLive(status: string | null | undefined): boolean {
  return !status || status === "up" || status === "starting";
}
