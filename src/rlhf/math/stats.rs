//! Small numerical helpers shared by the math and the metrics.

/// The logistic function σ(t) = 1/(1 + e^(−t)).
pub fn sigmoid(t: f32) -> f32 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// log σ(t), computed without overflow for large |t|: −softplus(−t).
pub fn log_sigmoid(t: f32) -> f32 {
    if t >= 0.0 { -(-t).exp().ln_1p() } else { t - t.exp().ln_1p() }
}

pub fn mean(xs: &[f32]) -> f32 {
    if xs.is_empty() { 0.0 } else { xs.iter().sum::<f32>() / xs.len() as f32 }
}

/// Population variance (divides by n).
pub fn variance(xs: &[f32]) -> f32 {
    let m = mean(xs);
    mean(&xs.iter().map(|x| (x - m).powi(2)).collect::<Vec<_>>())
}

/// Pearson correlation; 0 when either side has no spread.
pub fn pearson(xs: &[f32], ys: &[f32]) -> f32 {
    assert_eq!(xs.len(), ys.len());
    let (mx, my) = (mean(xs), mean(ys));
    let mut sxy = 0.0;
    let mut sxx = 0.0;
    let mut syy = 0.0;
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    if sxx <= 0.0 || syy <= 0.0 { 0.0 } else { sxy / (sxx * syy).sqrt() }
}

/// Explained variance of value predictions: 1 − Var[returns − values] / Var[returns]
/// (cleanrl's `explained_var`). 1 is perfect, 0 is no better than a constant, negative is worse.
pub fn explained_variance(values: &[f32], returns: &[f32]) -> f32 {
    let var_returns = variance(returns);
    if var_returns <= 0.0 {
        return f32::NAN;
    }
    let residual: Vec<f32> = returns.iter().zip(values).map(|(r, v)| r - v).collect();
    1.0 - variance(&residual) / var_returns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_and_log_sigmoid_match_their_definitions_and_stay_finite() {
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
        assert!((sigmoid(2.0) - 1.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-7);
        assert!((log_sigmoid(-1.5) - sigmoid(-1.5).ln()).abs() < 1e-6);
        assert!(log_sigmoid(-200.0).is_finite() && (log_sigmoid(-200.0) + 200.0).abs() < 1e-3);
        assert_eq!(sigmoid(-200.0), 0.0);
    }

    #[test]
    fn correlation_and_explained_variance_by_hand() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-6);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-6);
        // returns var = 2/3 · ... : returns [1,2,3] var 2/3; residual [0,0,1] var 2/9 → 1 − 1/3.
        let ev = explained_variance(&[1.0, 2.0, 2.0], &[1.0, 2.0, 3.0]);
        assert!((ev - (1.0 - (2.0 / 9.0) / (2.0 / 3.0))).abs() < 1e-6);
    }
}
