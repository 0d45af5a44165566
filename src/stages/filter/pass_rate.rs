//! `filter.pass_rate`: keep a band of the model's own pass rate (e.g. `gt: 0, le: 0.5`: hard
//! but learnable), whether `score` computed it or the input carried it (the `pass_rate`
//! column mapping).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::Result;
use crate::schema::Trace;
use crate::stages::{Measured, Stage, StageContext, Verdict};

/// Parameters of `filter.pass_rate`: bounds of the band kept (at least one), e.g.
/// `{gt: 0, le: 0.5}` keeps 0 < p <= 0.5.
#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PassRateConfig {
    /// Keep rows whose pass rate is greater than this.
    #[serde(default)]
    pub gt: Option<f64>,
    /// ... greater than or equal to this.
    #[serde(default)]
    pub ge: Option<f64>,
    /// ... less than this.
    #[serde(default)]
    pub lt: Option<f64>,
    /// ... less than or equal to this.
    #[serde(default)]
    pub le: Option<f64>,
}

impl PassRateConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        let bounds = [("gt", self.gt), ("ge", self.ge), ("lt", self.lt), ("le", self.le)];
        if bounds.iter().all(|(_, b)| b.is_none()) {
            return Err("give at least one bound: gt, ge, lt or le (e.g. `{gt: 0, le: 0.5}`)".into());
        }
        if self.gt.is_some() && self.ge.is_some() {
            return Err("give `gt` or `ge`, not both".into());
        }
        if self.lt.is_some() && self.le.is_some() {
            return Err("give `lt` or `le`, not both".into());
        }
        for (k, b) in bounds {
            if let Some(b) = b {
                if !(0.0..=1.0).contains(&b) {
                    return Err(format!("`{k}` is {b}; pass rates are in [0, 1]"));
                }
            }
        }
        // some p in [0, 1] must pass both sides
        let lo = self.gt.or(self.ge).unwrap_or(0.0);
        let hi = self.lt.or(self.le).unwrap_or(1.0);
        if lo > hi || (lo == hi && (self.gt.is_some() || self.lt.is_some())) {
            return Err(format!("the band keeps no pass rate (lower bound {lo}, upper bound {hi})"));
        }
        Ok(())
    }

    /// The band as text, e.g. `0 < p <= 0.5`.
    fn band(&self) -> String {
        let lo = match (self.gt, self.ge) {
            (Some(v), _) => format!("{v} < "),
            (_, Some(v)) => format!("{v} <= "),
            _ => String::new(),
        };
        let hi = match (self.lt, self.le) {
            (Some(v), _) => format!(" < {v}"),
            (_, Some(v)) => format!(" <= {v}"),
            _ => String::new(),
        };
        format!("{lo}p{hi}")
    }
}

pub struct PassRate {
    cfg: PassRateConfig,
}

impl PassRate {
    pub fn new(cfg: PassRateConfig) -> Self {
        Self { cfg }
    }
}

impl Stage for PassRate {
    fn name(&self) -> &'static str {
        "filter.pass_rate"
    }

    fn judge_measured(&self, _pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let Some(p) = t.pass_rate else {
            return Ok(Measured::only(Verdict::drop(
                "no_pass_rate",
                "the row has no pass rate (run `score` first, or map a `pass_rate` column)",
            )));
        };
        let c = &self.cfg;
        let low = c.gt.is_some_and(|b| p <= b) || c.ge.is_some_and(|b| p < b);
        let high = c.lt.is_some_and(|b| p >= b) || c.le.is_some_and(|b| p > b);
        let verdict = if low {
            Verdict::drop("too_hard", format!("pass rate {p} is outside {}", c.band()))
        } else if high {
            Verdict::drop("too_easy", format!("pass rate {p} is outside {}", c.band()))
        } else {
            Verdict::Keep
        };
        Ok(Measured { verdict, values: vec![("pass_rate", p)] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> PassRateConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn bands_are_checked() {
        assert!(cfg("{gt: 0, le: 0.5}").check().is_ok());
        assert!(cfg("{ge: 0.5, le: 0.5}").check().is_ok());
        for (y, needle) in [
            ("{}", "at least one bound"),
            ("{gt: 0, ge: 0}", "not both"),
            ("{lt: 1, le: 1}", "not both"),
            ("{le: 1.5}", "[0, 1]"),
            ("{gt: 0.5, le: 0.5}", "keeps no pass rate"),
            ("{ge: 0.6, lt: 0.4}", "keeps no pass rate"),
        ] {
            let e = cfg(y).check().unwrap_err();
            assert!(e.contains(needle), "{y}: {e}");
        }
        assert_eq!(cfg("{gt: 0, le: 0.5}").band(), "0 < p <= 0.5");
    }
}
