//! The metric catalogue's shape: every metric a daemon exports, with its type, labels and meaning.
//! Each crate lists its own (`<crate>/src/metrics.rs`, a `CATALOGUE` of [`doc`] entries); daemons
//! describe them at start (Prometheus `# HELP`) with [`register`], counters and gauges without
//! labels start at zero (so dashboards and alerts see 0, not "no data"), and docs/operations.md is
//! checked against the same lists.

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct MetricDoc {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

/// A catalogue entry (`const`, so catalogues are plain statics).
pub const fn doc(name: &'static str, kind: Kind, labels: &'static [&'static str], help: &'static str) -> MetricDoc {
    MetricDoc { name, kind, labels, help }
}

/// Describes every metric of `catalogue` to the installed recorder and starts the unlabelled
/// counters and gauges at zero.
pub fn register(catalogue: &[MetricDoc]) {
    for m in catalogue {
        match m.kind {
            Kind::Counter => {
                metrics::describe_counter!(m.name, m.help);
                if m.labels.is_empty() {
                    metrics::counter!(m.name).increment(0);
                }
            }
            Kind::Gauge => {
                metrics::describe_gauge!(m.name, m.help);
                if m.labels.is_empty() {
                    metrics::gauge!(m.name).increment(0.0);
                }
            }
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
}
