//! Turning measurements into `docs/benchmarks.md`: medians over runs, ratios to the floor with
//! their spread, latency percentiles.

use crate::load::LoadResult;

pub struct Row {
    pub name: String,
    pub floor: Option<String>,
    pub runs: Vec<LoadResult>,
    pub floor_runs: Vec<LoadResult>,
    /// redis-server's CPU per request over the measured runs, in µs (rows that use Redis).
    pub redis_cpu_us: Option<f64>,
}

/// The table's header, matching [`Row::markdown`].
pub const HEADER: &str = "| scenario | median req/s | vs floor | p50 / p90 / p99 / p99.9 µs | errors | redis-server CPU / request |\n|---|---|---|---|---|---|\n";

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    if values.is_empty() {
        return 0.0;
    }
    values[values.len() / 2]
}

impl Row {
    pub fn median_rps(&self) -> f64 {
        median(self.runs.iter().map(LoadResult::rps).collect())
    }

    /// Per-run ratios to the floor measured just before.
    pub fn ratios(&self) -> Vec<f64> {
        self.runs.iter().zip(&self.floor_runs).map(|(r, f)| r.rps() / f.rps()).collect()
    }

    pub fn median_ratio(&self) -> Option<f64> {
        (!self.floor_runs.is_empty()).then(|| median(self.ratios()))
    }

    fn median_run(&self) -> &LoadResult {
        let target = self.median_rps();
        self.runs.iter().min_by(|a, b| (a.rps() - target).abs().total_cmp(&(b.rps() - target).abs())).expect("a run")
    }

    pub fn markdown(&self) -> String {
        let run = self.median_run();
        let ratio = match self.median_ratio() {
            Some(m) => {
                let r = self.ratios();
                let (lo, hi) = (r.iter().cloned().fold(f64::MAX, f64::min), r.iter().cloned().fold(0.0, f64::max));
                format!(
                    "{:.0}% ({:.0}–{:.0}%) of {}",
                    m * 100.0,
                    lo * 100.0,
                    hi * 100.0,
                    self.floor.as_deref().unwrap_or("")
                )
            }
            None => "—".into(),
        };
        let errors: u64 = self.runs.iter().map(|r| r.errors).sum();
        let q = |q: f64| run.quantile(q).map_or("—".to_string(), |us| us.to_string());
        let redis = self.redis_cpu_us.map_or("—".to_string(), |us| format!("{us:.1} µs"));
        format!(
            "| {} | {:.0} | {} | {} / {} / {} / {} | {} | {} |",
            self.name,
            self.median_rps(),
            ratio,
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            errors,
            redis
        )
    }
}

/// The line after which `docs/benchmarks.md` holds what people wrote about the figures (runs of
/// one section, experiments, conclusions); a full run rewrites what is above it and keeps the rest.
pub const NOTES_MARKER: &str = "<!-- Everything below is kept when the bench rewrites this file. -->";

/// `generated`, then the marker and the notes of `previous` (the file as it was), if any.
pub fn keeping_notes(generated: String, previous: &str) -> String {
    let notes = previous.split_once(NOTES_MARKER).map_or("\n", |(_, notes)| notes);
    format!("{}\n{NOTES_MARKER}{notes}", generated.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_keeps_the_notes_below_the_marker() {
        let before = format!("# old figures\n\n{NOTES_MARKER}\n\n## Notes\n\nkept\n");
        let after = keeping_notes("# new figures\n".into(), &before);
        assert_eq!(after, format!("# new figures\n{NOTES_MARKER}\n\n## Notes\n\nkept\n"));
        let first = keeping_notes("# figures\n".into(), "");
        assert_eq!(first, format!("# figures\n{NOTES_MARKER}\n"));
        assert_eq!(keeping_notes("# again\n".into(), &first), first.replace("# figures", "# again"));
    }
}
