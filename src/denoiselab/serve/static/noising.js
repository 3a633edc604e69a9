/* The forward process on the page: x_k = alpha_k x0 + sigma_k eps, computed exactly as
 * q_sample does, from one x0 and one noise draw the server sent, for any k. */

export function combine(x0, eps, a, s) {
  if (x0.kind === "image") {
    const out = new Float32Array(x0.data.length);
    for (let i = 0; i < out.length; i++) out[i] = a * x0.data[i] + s * eps.data[i];
    return { kind: "image", shape: x0.shape, data: out };
  }
  const pts = new Array(x0.points.length);
  for (let i = 0; i < pts.length; i++) {
    const p = x0.points[i], e = eps.points[i];
    pts[i] = p.length > 1 ? [a * p[0] + s * e[0], a * p[1] + s * e[1]] : [a * p[0] + s * e[0]];
  }
  return { kind: "points", points: pts };
}
/** The data's share of the power of x_t = a x0 + s eps (unit-variance data): a^2 / (a^2 + s^2) =
 * SNR / (1 + SNR), with SNR = a^2 / s^2 as the server's snr_db.  For the variance-preserving
 * schedules it is alpha-bar; on the flow path (a = 1 - t, s = t) it is not (0.5 at t = 0.5, where
 * alpha-bar = a^2 = 0.25).  The Forward view's signal % and the Schedules table both use it. */
export function signalShare(a, s) { return a * a + s * s > 0 ? (a * a) / (a * a + s * s) : 0; }
