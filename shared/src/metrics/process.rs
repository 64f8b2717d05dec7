//! The standard `process_*` series (as Prometheus's own client libraries export them), read
//! from `/proc` at each scrape: CPU time, memory, file descriptors and start time. Dashboards
//! (Envoy Gateway's rate limit dashboard among them) plot these next to the service's own.
//! Elsewhere than Linux nothing is read and nothing is written.

use std::fmt::Write as _;

/// Linux reports CPU times in `/proc` in USER_HZ, which is 100 on every architecture Linux
/// exports to user space (the kernel converts from its internal HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// What one scrape read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
}

/// Reads this process's sample; `None` where `/proc` is not there.
pub fn sample() -> Option<ProcessSample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
    let (cpu_seconds, start_ticks) = parse_stat(&stat)?;
    let boot_time = boot.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
    Some(ProcessSample {
        cpu_seconds,
        resident_bytes: status_kib(&status, "VmRSS:").unwrap_or(0) * 1024,
        virtual_bytes: status_kib(&status, "VmSize:").unwrap_or(0) * 1024,
        open_fds,
        max_fds: max_open_files(&limits),
        start_time_seconds: boot_time as f64 + start_ticks as f64 / TICKS_PER_SECOND,
    })
}

/// (user + system CPU seconds, start time in ticks after boot) from `/proc/self/stat`. The
/// command name (field 2) may hold spaces and parentheses, so fields are counted after its
/// last `)`.
fn parse_stat(stat: &str) -> Option<(f64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, so field N is index N - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let start: u64 = fields.get(19)?.parse().ok()?;
    Some(((utime + stime) as f64 / TICKS_PER_SECOND, start))
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse().ok())
}

fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Appends the `process_*` families in the Prometheus text format.
pub fn render(out: &mut String, sample: &ProcessSample) {
    let mut family = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        sample.cpu_seconds,
    );
    family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", sample.resident_bytes as f64);
    family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", sample.virtual_bytes as f64);
    family("process_open_fds", "gauge", "Number of open file descriptors.", sample.open_fds as f64);
    if let Some(max) = sample.max_fds {
        family("process_max_fds", "gauge", "Maximum number of open file descriptors.", max as f64);
    }
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        sample.start_time_seconds,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_stat_past_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (rate (limit) x) S 1 4242 4242 0 -1 4194560 2000 0 0 0 250 150 0 0 20 0 9 0 12345 \
                    1000000 500 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(stat), Some((4.0, 12345)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_status_and_limits() {
        let status = "Name:\tratelimit\nVmSize:\t  123456 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(2048));
        assert_eq!(status_kib(status, "VmSize:"), Some(123_456));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1_048_576));
        assert_eq!(max_open_files("Max open files            unlimited   unlimited  files"), None);
    }

    #[test]
    fn this_process_has_a_sample_on_linux() {
        let sample = sample().expect("/proc is there on Linux");
        assert!(sample.resident_bytes > 0 && sample.open_fds > 0 && sample.start_time_seconds > 1.6e9, "{sample:?}");
        let mut out = String::new();
        render(&mut out, &sample);
        assert!(out.contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "), "{out}");
        assert_eq!(out.matches("# TYPE process_").count(), 6, "{out}");
    }
}
