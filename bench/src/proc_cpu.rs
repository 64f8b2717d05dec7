//! CPU time of a process, from `/proc`: how the bench charges work to redis-server or to a
//! service running as a process of its own.

/// CPU time (user + system) process `pid` has used so far, in seconds; 0 when it cannot be read.
pub fn seconds(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|stat| {
        // After the command name (which may hold spaces and parentheses): utime and stime,
        // fields 14 and 15.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    });
    // In clock ticks: USER_HZ, which Linux fixes at 100 for user space.
    ticks.unwrap_or(0) as f64 / 100.0
}
