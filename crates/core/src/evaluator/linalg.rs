//! The little linear algebra the Frechet distance needs: means, covariances and a symmetric
//! eigendecomposition (cyclic Jacobi), in f64.

/// Mean and covariance (divided by n - 1) of `rows` vectors of length `dim`.
pub fn mean_cov(rows: &[Vec<f32>], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len().max(1);
    let mut mean = vec![0.0f64; dim];
    for r in rows {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0f64; dim * dim];
    let mut centred = vec![0.0f64; dim];
    for r in rows {
        for ((c, &v), m) in centred.iter_mut().zip(r).zip(&mean) {
            *c = v as f64 - m;
        }
        for i in 0..dim {
            let ci = centred[i];
            if ci == 0.0 {
                continue;
            }
            for (out, cj) in cov[i * dim..(i + 1) * dim].iter_mut().zip(&centred) {
                *out += ci * cj;
            }
        }
    }
    let denom = (rows.len().max(2) - 1) as f64;
    cov.iter_mut().for_each(|c| *c /= denom);
    (mean, cov)
}

/// Eigenvalues and eigenvectors (columns of the returned row-major matrix) of a symmetric
/// `n x n` matrix, by cyclic Jacobi rotations.
pub fn symmetric_eigen(matrix: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = matrix.to_vec();
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
    for _sweep in 0..60 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-13 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let (app, aqq) = (a[p * n + p], a[q * n + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum().max(0.0) * 2.0 - 1.0;
                let t = t / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// The square root of a symmetric positive semi-definite matrix (negative eigenvalues from
/// rounding are clamped to 0).
pub fn sqrt_psd(matrix: &[f64], n: usize) -> Vec<f64> {
    let (values, vectors) = symmetric_eigen(matrix, n);
    let roots: Vec<f64> = values.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let mut out = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n)
                .map(|k| vectors[i * n + k] * roots[k] * vectors[j * n + k])
                .sum();
        }
    }
    out
}

/// `a * b` for `n x n` row-major matrices.
pub fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            for (o, bkj) in out[i * n..(i + 1) * n]
                .iter_mut()
                .zip(&b[k * n..(k + 1) * n])
            {
                *o += aik * bkj;
            }
        }
    }
    out
}

/// The Frechet distance between Gaussians `N(m1, c1)` and `N(m2, c2)`:
/// `|m1 - m2|^2 + tr(c1 + c2 - 2 (c1^1/2 c2 c1^1/2)^1/2)`.
pub fn frechet(m1: &[f64], c1: &[f64], m2: &[f64], c2: &[f64]) -> f64 {
    let n = m1.len();
    let mean_term: f64 = m1.iter().zip(m2).map(|(a, b)| (a - b) * (a - b)).sum();
    let root1 = sqrt_psd(c1, n);
    let inner = matmul(&matmul(&root1, c2, n), &root1, n);
    // Symmetrise against rounding before the eigendecomposition.
    let mut sym = inner.clone();
    for i in 0..n {
        for j in 0..n {
            sym[i * n + j] = 0.5 * (inner[i * n + j] + inner[j * n + i]);
        }
    }
    let (values, _) = symmetric_eigen(&sym, n);
    let cross: f64 = values.iter().map(|&l| l.max(0.0).sqrt()).sum();
    let trace = |c: &[f64]| (0..n).map(|i| c[i * n + i]).sum::<f64>();
    (mean_term + trace(c1) + trace(c2) - 2.0 * cross).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_decomposition_reconstructs_the_matrix() {
        let m = [4.0, 1.0, 0.5, 1.0, 3.0, -0.2, 0.5, -0.2, 2.0];
        let (values, vectors) = symmetric_eigen(&m, 3);
        for i in 0..3 {
            for j in 0..3 {
                let r: f64 = (0..3)
                    .map(|k| vectors[i * 3 + k] * values[k] * vectors[j * 3 + k])
                    .sum();
                assert!((r - m[i * 3 + j]).abs() < 1e-10, "{i},{j}: {r}");
            }
        }
        let root = sqrt_psd(&m, 3);
        let back = matmul(&root, &root, 3);
        for (a, b) in back.iter().zip(&m) {
            assert!((a - b).abs() < 1e-10);
        }
    }

    #[test]
    fn frechet_distance_matches_closed_forms() {
        let eye = [1.0, 0.0, 0.0, 1.0];
        assert!(frechet(&[0.0, 0.0], &eye, &[0.0, 0.0], &eye).abs() < 1e-9);
        // Means apart by (3, 4): distance 25.
        assert!((frechet(&[0.0, 0.0], &eye, &[3.0, 4.0], &eye) - 25.0).abs() < 1e-9);
        // Diagonal covariances: sum (sqrt(a) - sqrt(b))^2 = (2 - 1)^2 + (3 - 1)^2 = 5.
        let a = [4.0, 0.0, 0.0, 9.0];
        assert!((frechet(&[0.0, 0.0], &a, &[0.0, 0.0], &eye) - 5.0).abs() < 1e-9);
        // Symmetric in its arguments for non-commuting covariances.
        let b = [2.0, 0.7, 0.7, 1.0];
        let c = [1.0, -0.3, -0.3, 3.0];
        let (x, y) = (
            frechet(&[0.1, 0.0], &b, &[0.0, 0.2], &c),
            frechet(&[0.0, 0.2], &c, &[0.1, 0.0], &b),
        );
        assert!((x - y).abs() < 1e-9, "{x} vs {y}");
    }

    #[test]
    fn sample_covariance_is_unbiased_on_a_tiny_case() {
        let rows = vec![vec![1.0f32, 2.0], vec![3.0, 6.0]];
        let (mean, cov) = mean_cov(&rows, 2);
        assert_eq!(mean, vec![2.0, 4.0]);
        assert_eq!(cov, vec![2.0, 4.0, 4.0, 8.0]);
    }
}
