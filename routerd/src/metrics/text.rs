//! The Prometheus text exposition format (version 0.0.4): a `# HELP` and `# TYPE` line per family, then its
//! samples. Families are written whole, so each name appears in one block as the format requires.

use std::fmt::Write;

pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a family: its help text and type.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {}", kind.name());
        self
    }

    /// One sample of the current family.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                let _ = write!(self.text, "{key}=\"{escaped}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
        self
    }

    /// A histogram's samples: cumulative buckets, +Inf, sum and count.
    pub(crate) fn histogram(&mut self, name: &str, buckets: &[(f64, u64)], count: u64, sum: f64) -> &mut Self {
        for (bound, cumulative) in buckets {
            self.sample(&format!("{name}_bucket"), &[("le", &format_value(*bound))], *cumulative as f64);
        }
        self.sample(&format!("{name}_bucket"), &[("le", "+Inf")], count as f64);
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], count as f64)
    }

    pub(crate) fn finish(self) -> String {
        self.text
    }
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaped_labels() {
        let mut out = Exposition::default();
        out.family("routerd_test_total", Kind::Counter, "A test.\nSecond line")
            .sample("routerd_test_total", &[("name", "a\"b\\c")], 3.0)
            .sample("routerd_test_total", &[], 0.5);
        assert_eq!(
            out.finish(),
            "# HELP routerd_test_total A test.\\nSecond line\n# TYPE routerd_test_total counter\n\
             routerd_test_total{name=\"a\\\"b\\\\c\"} 3\nrouterd_test_total 0.5\n"
        );
    }

    #[test]
    fn histograms_end_with_inf_sum_and_count() {
        let mut out = Exposition::default();
        out.family("h_seconds", Kind::Histogram, "h").histogram("h_seconds", &[(0.005, 1), (1.0, 2)], 3, 4.25);
        let text = out.finish();
        assert!(text.contains("h_seconds_bucket{le=\"0.005\"} 1\nh_seconds_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.ends_with("h_seconds_bucket{le=\"+Inf\"} 3\nh_seconds_sum 4.25\nh_seconds_count 3\n"), "{text}");
    }
}
