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
export function signalShare(a, s) { return a * a + s * s > 0 ? (a * a) / (a * a + s * s) : 0; }
