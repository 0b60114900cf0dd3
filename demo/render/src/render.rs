//! The renderer: exact Schwarzschild null geodesics, one per pixel, in units where the
//! Schwarzschild radius is 1 (so the horizon is at r = 1 and the photon sphere at r = 1.5).
//!
//! A light ray stays in the plane through the hole, the camera and the ray's direction. In that
//! plane, with u = 1/r, the orbit obeys Binet's equation u'' = -u + 1.5 u^2 (d/dphi), which is
//! integrated with fixed-step RK4 in the orbit angle. The ray ends when it falls through the
//! horizon (black), reaches u = 0 (infinity: sample the sky in its asymptotic direction) or
//! winds around the photon sphere too long (black). Each time it crosses the equatorial plane
//! between the inner and outer disk radius, the accretion disk's emission is composited in,
//! Doppler- and gravitationally shifted, so the far side of the disk appears above and below the
//! shadow and thin higher-order images hug the photon ring.
//!
//! Frame time T moves the camera on a slow inclined orbit and rotates the disk's texture
//! differentially (Keplerian). Everything is plain f64 arithmetic and integer hashing: the same T
//! and size give the same bytes.

use std::f64::consts::{PI, TAU};

/// Camera distance from the hole.
const CAM_R: f64 = 20.0;
/// Horizontal field of view.
const FOV_X: f64 = 58.0 * PI / 180.0;
/// One camera orbit takes this many units of frame time (the 120-frame demo at dt 0.5 sweeps
/// half an orbit).
const ORBIT_PERIOD: f64 = 120.0;
/// Disk inner edge (innermost stable circular orbit, 3 Schwarzschild radii) and outer edge.
const DISK_IN: f64 = 3.0;
const DISK_OUT: f64 = 10.5;
/// Speed-up of the disk texture's Keplerian rotation, for a lively animation.
const DISK_SPIN: f64 = 3.0;
/// RK4 step in orbit angle: STEP_K / u, clamped (fine near the photon sphere, coarse far
/// out where orbits are nearly straight), and the winding after which a ray counts as captured.
const STEP_K: f64 = 0.025;
const STEP_MIN: f64 = 0.02;
const STEP_MAX: f64 = 0.2;
const MAX_PHI: f64 = 6.0 * PI;
const EXPOSURE: f64 = 1.6;

#[derive(Clone, Copy, Debug, PartialEq)]
struct V3 {
    x: f64,
    y: f64,
    z: f64,
}

const fn v3(x: f64, y: f64, z: f64) -> V3 {
    V3 { x, y, z }
}

impl V3 {
    fn dot(self, o: V3) -> f64 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }
    fn cross(self, o: V3) -> V3 {
        v3(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }
    fn len(self) -> f64 {
        self.dot(self).sqrt()
    }
    fn norm(self) -> V3 {
        self * (1.0 / self.len())
    }
}

impl std::ops::Add for V3 {
    type Output = V3;
    fn add(self, o: V3) -> V3 {
        v3(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}

impl std::ops::Sub for V3 {
    type Output = V3;
    fn sub(self, o: V3) -> V3 {
        v3(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}

impl std::ops::Mul<f64> for V3 {
    type Output = V3;
    fn mul(self, s: f64) -> V3 {
        v3(self.x * s, self.y * s, self.z * s)
    }
}

/// Camera at frame time `t`: position, forward, right, up.
struct Camera {
    pos: V3,
    fwd: V3,
    right: V3,
    up: V3,
}

impl Camera {
    fn at(t: f64) -> Camera {
        let az = TAU * t / ORBIT_PERIOD + 0.35;
        // Low inclination, gently bobbing: the disk's far side arches over the shadow.
        let el = (9.0 + 4.0 * (TAU * t / (0.75 * ORBIT_PERIOD)).sin()) * PI / 180.0;
        let pos = v3(el.cos() * az.cos(), el.cos() * az.sin(), el.sin()) * CAM_R;
        let fwd = (v3(0.0, 0.0, 0.0) - pos).norm();
        let right = fwd.cross(v3(0.0, 0.0, 1.0)).norm();
        let up = right.cross(fwd);
        // A slight roll makes the picture less static.
        let roll = 0.12 * (TAU * t / ORBIT_PERIOD).sin();
        let (s, c) = roll.sin_cos();
        Camera {
            pos,
            fwd,
            right: right * c + up * s,
            up: up * c - right * s,
        }
    }
}

/// Renders one frame as tightly packed 8-bit RGB, row by row from the top.
pub fn render(t: f64, width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let cam = Camera::at(t);
    let tan_x = (FOV_X / 2.0).tan();
    let tan_y = tan_x * h as f64 / w as f64;
    // Angular size of a pixel: stars are never drawn smaller, so they do not flicker.
    let pix = 2.0 * tan_x / w as f64;
    let lut = tone_lut();
    let mut img = Vec::with_capacity(w * h * 3);
    for j in 0..h {
        let sy = (1.0 - 2.0 * (j as f64 + 0.5) / h as f64) * tan_y;
        for i in 0..w {
            let sx = (2.0 * (i as f64 + 0.5) / w as f64 - 1.0) * tan_x;
            let dir = (cam.fwd + cam.right * sx + cam.up * sy).norm();
            let c = trace(cam.pos, dir, t, pix);
            img.extend_from_slice(&[encode(&lut, c[0]), encode(&lut, c[1]), encode(&lut, c[2])]);
        }
    }
    img
}

/// Size of the tone curve table; fine enough that neighbouring entries differ by < 1/255.
const LUT_SIZE: usize = 8192;

/// Exposure and soft shoulder (1 - e^-x) map radiance to [0, 1); the table maps that to sRGB.
fn tone_lut() -> Vec<u8> {
    (0..LUT_SIZE)
        .map(|i| {
            let x = i as f64 / (LUT_SIZE - 1) as f64;
            let s = if x <= 0.003_130_8 {
                12.92 * x
            } else {
                1.055 * x.powf(1.0 / 2.4) - 0.055
            };
            (s.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
        })
        .collect()
}

fn encode(lut: &[u8], linear: f64) -> u8 {
    let x = 1.0 - (-linear.max(0.0) * EXPOSURE).exp();
    lut[((x * (LUT_SIZE - 1) as f64 + 0.5) as usize).min(LUT_SIZE - 1)]
}

/// Mean Rec. 709 luma of an 8-bit RGB buffer, in 0..=1.
pub fn mean_luminance(rgb: &[u8]) -> f64 {
    let n = rgb.len() / 3;
    if n == 0 {
        return 0.0;
    }
    let sum: f64 = rgb
        .chunks_exact(3)
        .map(|p| 0.2126 * f64::from(p[0]) + 0.7152 * f64::from(p[1]) + 0.0722 * f64::from(p[2]))
        .sum();
    sum / (n as f64 * 255.0)
}

/// Follows one ray from the camera; returns linear RGB radiance.
fn trace(cam: V3, dir: V3, t: f64, pix: f64) -> [f64; 3] {
    let r0 = cam.len();
    let n = cam * (1.0 / r0); // radial unit vector at the camera: phi = 0
    let dr = dir.dot(n);
    let tv = dir - n * dr;
    let dt = tv.len();
    if dt < 1e-12 {
        // Exactly radial: straight in, or straight out.
        return if dr < 0.0 { [0.0; 3] } else { sky(dir, pix) };
    }
    let tn = tv * (1.0 / dt); // phi = pi/2 direction in the orbit plane
    let at = |phi: f64| {
        let (s, c) = phi.sin_cos();
        (n * c + tn * s, tn * c - n * s) // (e_r, e_phi)
    };

    // Static observer at r0: du/dphi = -u sqrt(1 - u) * cot(angle to the radial direction).
    let mut u = 1.0 / r0;
    let mut du = -u * (1.0 - u).sqrt() * dr / dt;
    let mut phi = 0.0;
    // The height above the disk plane, r (cos phi n.z + sin phi tn.z), vanishes exactly at
    // phi = phi0 + k pi.
    let mut next_cross = (-n.z).atan2(tn.z).rem_euclid(PI);
    if next_cross < 1e-9 {
        next_cross += PI;
    }

    let mut col = [0.0; 3];
    let mut trans = 1.0;
    let f = |u: f64| -u + 1.5 * u * u;
    while phi < MAX_PHI {
        // RK4 on (u, u'), with steps that shrink close to the hole.
        let h = (STEP_K / u.max(1e-3)).clamp(STEP_MIN, STEP_MAX);
        let (k1u, k1v) = (du, f(u));
        let (k2u, k2v) = (du + 0.5 * h * k1v, f(u + 0.5 * h * k1u));
        let (k3u, k3v) = (du + 0.5 * h * k2v, f(u + 0.5 * h * k2u));
        let (k4u, k4v) = (du + h * k3v, f(u + h * k3u));
        let nu = u + h / 6.0 * (k1u + 2.0 * k2u + 2.0 * k3u + k4u);
        let ndu = du + h / 6.0 * (k1v + 2.0 * k2v + 2.0 * k3v + k4v);
        let nphi = phi + h;

        while next_cross <= nphi {
            // Cubic Hermite interpolation of u inside the step.
            let a = (next_cross - phi) / h;
            let (a2, a3) = (a * a, a * a * a);
            let uc = (2.0 * a3 - 3.0 * a2 + 1.0) * u
                + (a3 - 2.0 * a2 + a) * h * du
                + (-2.0 * a3 + 3.0 * a2) * nu
                + (a3 - a2) * h * ndu;
            let duc = du + a * (ndu - du);
            if uc > 0.0 {
                let r = 1.0 / uc;
                if r > DISK_IN * 0.97 && r < DISK_OUT * 1.08 {
                    let (er, ephi) = at(next_cross);
                    // Direction of travel (camera -> disk); dr/dphi = -u'/u^2.
                    let k = (er * (-duc / (uc * uc)) + ephi * r).norm();
                    let (e, alpha) = disk(er * r, r, k, t);
                    for (ch, ev) in col.iter_mut().zip(e) {
                        *ch += trans * alpha * ev;
                    }
                    trans *= 1.0 - alpha;
                    if trans < 0.01 {
                        return col;
                    }
                }
            }
            next_cross += PI;
        }

        if nu >= 1.0 {
            return col; // through the horizon
        }
        if nu <= 0.0 {
            // Reached infinity: the ray's final direction is the radial direction there.
            let (dir_inf, _) = at(phi + h * u / (u - nu));
            let sk = sky(dir_inf, pix);
            for (ch, sv) in col.iter_mut().zip(sk) {
                *ch += trans * sv;
            }
            return col;
        }
        u = nu;
        du = ndu;
        phi = nphi;
    }
    col // trapped near the photon sphere
}

/// Accretion disk emission at `pos` (radius `r`) seen along travel direction `k`:
/// returns (linear RGB, opacity).
fn disk(pos: V3, r: f64, k: V3, t: f64) -> ([f64; 3], f64) {
    // Soft edges.
    let inner = smoothstep(DISK_IN * 0.97, DISK_IN * 1.12, r);
    let outer = 1.0 - smoothstep(DISK_OUT * 0.8, DISK_OUT * 1.08, r);
    let edge = inner * outer;
    if edge <= 0.0 {
        return ([0.0; 3], 0.0);
    }

    // Novikov-Thorne-like flux profile, peaking a little outside the inner edge.
    let x = DISK_IN / r;
    let flux = x * x * x * (1.0 - x.sqrt()).max(0.0);
    let flux_peak = 0.056_65; // max of the profile above: (36/49)^3 / 7 at r = 49/36 DISK_IN
    let temp = (flux / flux_peak).sqrt().sqrt();

    // Texture: turbulent differentially rotating streaks.
    let azimuth = pos.y.atan2(pos.x);
    let omega = DISK_SPIN * (0.5 / (r * r * r)).sqrt();
    let a = azimuth - omega * t;
    let lr = r.ln();
    let n1 = periodic_noise(a, lr * 9.0, 24, 11);
    let n2 = periodic_noise(a, lr * 23.0, 60, 29);
    let spiral = 0.5 + 0.5 * (3.0 * a + 7.0 * lr).cos();
    let tex = (0.35 + 0.65 * n1) * (0.6 + 0.4 * n2) * (0.75 + 0.25 * spiral);

    // Orbital velocity (static frame) and the observed frequency shift.
    let beta = (0.5 / (r - 1.0)).sqrt().min(0.99);
    let gamma = 1.0 / (1.0 - beta * beta).sqrt();
    let vdir = v3(-pos.y, pos.x, 0.0) * (1.0 / r);
    // The photon travels along -k; it is blueshifted when the gas moves toward the camera.
    let g = (1.0 - 1.0 / r).sqrt() / (gamma * (1.0 + beta * vdir.dot(k)));

    let intensity = 1.1 * temp.powi(4) * g.powi(4) * tex;
    let tint = blackbody(2700.0 * temp * g + 600.0);
    let alpha = (edge * (0.55 + 0.4 * tex)).min(0.97);
    let e = [
        tint[0] * intensity * edge,
        tint[1] * intensity * edge,
        tint[2] * intensity * edge,
    ];
    (e, alpha)
}

/// Approximate blackbody colour (linear RGB, max channel 1) for a temperature in kelvin.
fn blackbody(kelvin: f64) -> [f64; 3] {
    let t = (kelvin / 100.0).clamp(10.0, 400.0);
    let r = if t <= 66.0 {
        255.0
    } else {
        329.698_727_446 * (t - 60.0).powf(-0.133_204_759_2)
    };
    let g = if t <= 66.0 {
        99.470_802_586_1 * t.ln() - 161.119_568_166_1
    } else {
        288.122_169_528_3 * (t - 60.0).powf(-0.075_514_849_2)
    };
    let b = if t >= 66.0 {
        255.0
    } else if t <= 19.0 {
        0.0
    } else {
        138.517_731_223_1 * (t - 10.0).ln() - 305.044_792_730_7
    };
    // sRGB-ish values to linear.
    let lin = |v: f64| (v.clamp(0.0, 255.0) / 255.0).powf(2.2);
    [lin(r), lin(g), lin(b)]
}

/// The celestial sphere, fixed in world coordinates: faint checkerboard (makes the lensing
/// distortion obvious), a nebulous band and two layers of stars.
fn sky(d: V3, pix: f64) -> [f64; 3] {
    let theta = d.z.clamp(-1.0, 1.0).acos();
    let lon = d.y.atan2(d.x);

    let checker = ((lon / TAU * 24.0).floor() as i64 + (theta / PI * 12.0).floor() as i64) & 1;
    let base = if checker == 0 {
        [0.0004, 0.0004, 0.0012]
    } else {
        [0.0032, 0.0026, 0.0065]
    };

    let mut c = base;

    // A galactic band tilted against the disk plane.
    let band_axis = v3(0.35, -0.25, 0.9).norm();
    let b = d.dot(band_axis);
    let band = (-(b * b) / 0.03).exp();
    if band > 1e-3 {
        let dust = value_noise3(d * 5.0, 3) * 0.7 + value_noise3(d * 13.0, 5) * 0.3;
        let neb = band * (0.25 + 0.75 * dust);
        c = [c[0] + 0.016 * neb, c[1] + 0.010 * neb, c[2] + 0.024 * neb];
    }

    let s = stars(d, pix, 120.0, 0.6, 0.06, 1) * 0.6 + stars(d, pix, 40.0, 0.25, 0.04, 2) * 3.0;
    if s > 1e-4 {
        // Star colours vary smoothly over the sky, from orange to blue-white.
        let star_c = blackbody(3500.0 + 7000.0 * value_noise3(d * 40.0, 7));
        c = [
            c[0] + s * star_c[0],
            c[1] + s * star_c[1],
            c[2] + s * star_c[2],
        ];
    }
    c
}

/// Point stars on a cube-map grid with `cells` cells per face edge; `density` is the chance a
/// cell holds a star, `sigma` the star radius as a fraction of a cell. A star is at least about
/// a pixel wide (`pix`, radians), with its total light kept, so it moves smoothly across pixels.
fn stars(d: V3, pix: f64, cells: f64, density: f64, sigma: f64, seed: u64) -> f64 {
    let (ax, ay, az) = (d.x.abs(), d.y.abs(), d.z.abs());
    let (face, fu, fv) = if ax >= ay && ax >= az {
        (if d.x > 0.0 { 0 } else { 1 }, d.y / ax, d.z / ax)
    } else if ay >= az {
        (if d.y > 0.0 { 2 } else { 3 }, d.x / ay, d.z / ay)
    } else {
        (if d.z > 0.0 { 4 } else { 5 }, d.x / az, d.y / az)
    };
    let gu = (fu * 0.5 + 0.5) * cells;
    let gv = (fv * 0.5 + 0.5) * cells;
    let (cu, cv) = (gu.floor(), gv.floor());
    let hsh = hash(&[seed, face, cu as i64 as u64, cv as i64 as u64]);
    if unit(hsh) > density {
        return 0.0;
    }
    // Star centre in the middle of the cell so it (nearly) never spills into a neighbour.
    let su = cu + 0.3 + 0.4 * unit(hash(&[hsh, 1]));
    let sv = cv + 0.3 + 0.4 * unit(hash(&[hsh, 2]));
    let d2 = (gu - su).powi(2) + (gv - sv).powi(2);
    let mag = unit(hash(&[hsh, 3]));
    let bright = 0.05 + 1.6 * mag.powi(6);
    // A cube-face cell spans about 2 / cells radians.
    let s = sigma.max(0.5 * pix * cells / 2.0).min(0.11);
    bright * (sigma * sigma / (s * s)) * (-d2 / (2.0 * s * s)).exp()
}

fn smoothstep(a: f64, b: f64, x: f64) -> f64 {
    let t = ((x - a) / (b - a)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// SplitMix64-style mixing of a few words.
fn hash(words: &[u64]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
    for &w in words {
        h ^= w
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(h << 6)
            .wrapping_add(h >> 2);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    h
}

/// Maps a hash to [0, 1).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// 2D value noise, periodic in the angle `a` (radians) with `period` cells per turn.
fn periodic_noise(a: f64, y: f64, period: i64, seed: u64) -> f64 {
    let x = a.rem_euclid(TAU) / TAU * period as f64;
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let xi = (x0 as i64).rem_euclid(period);
    let xj = (xi + 1) % period;
    let yi = y0 as i64;
    let at = |xx: i64, yy: i64| unit(hash(&[seed, xx as u64, yy as u64]));
    let top = at(xi, yi) + (at(xj, yi) - at(xi, yi)) * sx;
    let bot = at(xi, yi + 1) + (at(xj, yi + 1) - at(xi, yi + 1)) * sx;
    top + (bot - top) * sy
}

/// 3D value noise in [0, 1].
fn value_noise3(p: V3, seed: u64) -> f64 {
    let (x0, y0, z0) = (p.x.floor(), p.y.floor(), p.z.floor());
    let s = |f: f64| f * f * (3.0 - 2.0 * f);
    let (fx, fy, fz) = (s(p.x - x0), s(p.y - y0), s(p.z - z0));
    let (xi, yi, zi) = (x0 as i64, y0 as i64, z0 as i64);
    let at = |dx: i64, dy: i64, dz: i64| {
        unit(hash(&[
            seed,
            (xi + dx) as u64,
            (yi + dy) as u64,
            (zi + dz) as u64,
        ]))
    };
    let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
    let x00 = lerp(at(0, 0, 0), at(1, 0, 0), fx);
    let x10 = lerp(at(0, 1, 0), at(1, 1, 0), fx);
    let x01 = lerp(at(0, 0, 1), at(1, 0, 1), fx);
    let x11 = lerp(at(0, 1, 1), at(1, 1, 1), fx);
    lerp(lerp(x00, x10, fy), lerp(x01, x11, fy), fz)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(img: &[u8], w: u32, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * w + x) * 3) as usize;
        [img[i], img[i + 1], img[i + 2]]
    }

    #[test]
    fn size_matches_dimensions() {
        for (w, h) in [(1, 1), (7, 3), (64, 36)] {
            assert_eq!(render(0.0, w, h).len(), (w * h * 3) as usize);
        }
    }

    #[test]
    fn deterministic_for_same_time() {
        assert_eq!(render(3.25, 80, 45), render(3.25, 80, 45));
    }

    #[test]
    fn differs_between_times() {
        let a = render(0.0, 80, 45);
        let b = render(0.5, 80, 45);
        let c = render(10.0, 80, 45);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
    }

    #[test]
    fn looks_like_a_black_hole() {
        let (w, h) = (160, 90);
        for t in [0.0, 17.0, 42.5] {
            let img = render(t, w, h);
            // The shadow in the middle is black.
            assert_eq!(px(&img, w, w / 2, h / 2), [0, 0, 0], "t={t}");
            // The disk makes some pixels bright.
            let bright = img
                .chunks_exact(3)
                .filter(|p| p.iter().any(|&c| c > 200))
                .count();
            assert!(bright > 50, "t={t}: only {bright} bright pixels");
            let m = mean_luminance(&img);
            assert!(m > 0.03 && m < 0.6, "t={t}: mean luminance {m}");
        }
    }

    #[test]
    fn luminance_bounds() {
        assert_eq!(mean_luminance(&[]), 0.0);
        assert_eq!(mean_luminance(&[0, 0, 0]), 0.0);
        assert!((mean_luminance(&[255, 255, 255, 0, 0, 0]) - 0.5).abs() < 1e-12);
    }
}
