//! Pooling of an encoder's rows into one vector: the mean over the rows, rounded half up.

/// `y[j] = ⌊(Σ_r x[r, j] + n/2) / n⌋` over the `n = x.len() / d` rows of `x` (`n ≤ 2^16`, so the
/// `i32` sums cannot overflow). No rows: `y` is left as it is.
pub fn mean_rows(x: &[i16], d: usize, y: &mut [i16]) {
    let n = x.len().checked_div(d).unwrap_or(0);
    if n == 0 {
        return;
    }
    for (j, yj) in y.iter_mut().enumerate().take(d) {
        let sum: i32 = x.chunks_exact(d).map(|r| r.get(j).copied().unwrap_or(0) as i32).sum();
        *yj = (sum + n as i32 / 2).div_euclid(n as i32).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_rounds_half_up() {
        let mut y = [0i16; 2];
        mean_rows(&[1, -1, 2, -2], 2, &mut y);
        assert_eq!(y, [2, -1]); // 3/2 = 1.5 -> 2, -3/2 = -1.5 -> -1
        mean_rows(&[i16::MAX, i16::MIN, i16::MAX, i16::MIN, i16::MAX, i16::MIN], 2, &mut y);
        assert_eq!(y, [i16::MAX, i16::MIN]);
    }
}
