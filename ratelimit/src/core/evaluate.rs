//! Evaluating a request, in two pure steps around the counter store:
//!
//! 1. [`plan`] matches every descriptor to a limit and, for the ones that count, builds the
//!    counter key and addend;
//! 2. [`decide`] turns the counter values the store returned into descriptor statuses, the
//!    overall code, the `RateLimit-*` headers and the statistics deltas.

use std::sync::Arc;

use smallvec::SmallVec;

use super::algorithm::{bucket_status, sliding_estimate, sliding_wait, Algorithm, Bucket, MICROS};
use super::config::RateLimitConfig;
use super::request::{Entry, RateLimitRequest};
use super::stat_key::{dynamic_stat_key, override_stat_key};
use super::unit::Unit;

pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// The time of an evaluation: whole seconds name the windows, microseconds drive the sliding
/// window's weights and token buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub seconds: u64,
    pub micros: u64,
}

impl Now {
    pub fn from_micros(micros: u64) -> Now {
        Now { seconds: micros / MICROS, micros }
    }
}

/// A whole second (the start of it).
impl From<u64> for Now {
    fn from(seconds: u64) -> Now {
        Now { seconds, micros: seconds.saturating_mul(MICROS) }
    }
}

/// Settings that shape a verdict (read once at start, applied with every config). Its
/// `Default` (the declared defaults) is implemented in `crate::settings`, where each default is
/// declared once.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationSettings {
    pub cache_key_prefix: String,
    pub near_limit_ratio: f32,
    /// `SHADOW_MODE`: never answer OVER_LIMIT overall.
    pub global_shadow_mode: bool,
    /// `QUOTA_MODE`: every descriptor is a quota descriptor.
    pub global_quota_mode: bool,
    /// `LIMIT_RESPONSE_HEADERS_ENABLED` and the header names.
    pub response_headers: Option<HeaderNames>,
    /// `LIMIT_RETRY_AFTER_HEADER_ENABLED`: `Retry-After` on OVER_LIMIT answers (Gatehouse's).
    pub retry_after: bool,
}

/// The header an OVER_LIMIT answer carries when [`EvaluationSettings::retry_after`]: Envoy adds
/// `response_headers_to_add` to the 429 it sends, so clients learn when to come back.
pub const RETRY_AFTER: &str = "Retry-After";

/// The `RateLimit-*` header names; `Default` (the declared names) is in `crate::settings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderNames {
    pub limit: String,
    pub remaining: String,
    pub reset: String,
}

/// Which statistics a counted descriptor reports under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatRef {
    /// A configured limit with a fixed stat key: [`super::Limit::id`].
    Limit(usize),
    /// A stat key that depends on the request (overrides, `detailed_metric`, `value_to_metric`).
    Dynamic(String),
}

/// A descriptor whose limit is counted in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub key: String,
    pub hits: u64,
    pub unit: Unit,
    pub requests_per_unit: u32,
    pub name: Arc<str>,
    pub shadow_mode: bool,
    pub quota: bool,
    pub stat: StatRef,
    pub algorithm: Algorithm,
    /// The sliding window's counter of the previous window.
    pub previous_key: Option<String>,
}

impl Counted {
    /// A token bucket's numbers for this descriptor's hits.
    pub fn bucket(&self) -> Option<Bucket> {
        match self.algorithm {
            Algorithm::TokenBucket { burst } => {
                Some(Bucket::new(self.hits, self.requests_per_unit, burst, self.unit.seconds()))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// No limit applies. `quota` is set under global quota mode, where such a descriptor still
    /// takes part in the quota decision (as passing).
    NoLimit {
        quota: bool,
    },
    Unlimited,
    Counted(Counted),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub descriptors: Vec<Planned>,
    /// The matched config node's metadata by descriptor index; shorter than `descriptors` (empty
    /// when no matched node has metadata): a missing index has none.
    pub metadata: Vec<Option<Arc<Metadata>>>,
    /// False when the domain is not configured at all.
    pub domain_found: bool,
}

impl Plan {
    /// This plan with every counted limit divided among `instances` (at least 1 each, but a
    /// limit of 0 stays 0: it refuses everything wherever it is counted): what one instance
    /// enforces while it counts alone.
    pub fn shared_among(&self, instances: u32) -> Plan {
        let mut share = self.clone();
        for planned in &mut share.descriptors {
            if let Planned::Counted(counted) = planned {
                if counted.requests_per_unit > 0 {
                    counted.requests_per_unit = (counted.requests_per_unit / instances.max(1)).max(1);
                }
            }
        }
        share
    }

    /// The counted descriptors with their index in the request.
    pub fn counted(&self) -> impl Iterator<Item = (usize, &Counted)> {
        self.descriptors.iter().enumerate().filter_map(|(i, p)| match p {
            Planned::Counted(c) => Some((i, c)),
            _ => None,
        })
    }
}

/// Matches every descriptor and prepares the counter updates.
pub fn plan(
    config: &RateLimitConfig,
    request: &RateLimitRequest,
    settings: &EvaluationSettings,
    now: impl Into<Now>,
) -> Plan {
    let now = now.into().seconds;
    let domain = request.domain.as_str();
    let domain_found = config.has_domain(domain);
    // Requests carry one or two descriptors almost always: their matches stay on the stack.
    let mut matched: SmallVec<[Option<Match<'_>>; 4]> = SmallVec::with_capacity(request.descriptors.len());
    SCRATCH.with_borrow_mut(|scratch| {
        for descriptor in &request.descriptors {
            if !domain_found {
                matched.push(None);
                continue;
            }
            matched.push(match descriptor.limit_override {
                Some(o) => Some(Match::Override(o.requests_per_unit, o.unit)),
                None => config.find(domain, &descriptor.entries, scratch).map(Match::Config),
            });
        }
        // A huge entry grew the buffer: it is not kept for the thread's life.
        if scratch.capacity() > SCRATCH_KEPT_BYTES {
            *scratch = String::new();
        }
    });

    // Replacement is request-wide: a limit named in any matched limit's `replaces` disappears.
    let replaced: Vec<&str> = matched
        .iter()
        .flatten()
        .filter_map(|m| match m {
            Match::Config(c) => Some(c.limit.replaces.iter().map(String::as_str)),
            Match::Override(..) => None,
        })
        .flatten()
        .collect();

    let mut descriptors = Vec::with_capacity(request.descriptors.len());
    let mut metadata = MetadataList::default();
    for (index, m) in matched.into_iter().enumerate() {
        let entries = &request.descriptors[index].entries;
        let hits = request.addend_of(index);
        let planned = match m {
            None => Planned::NoLimit { quota: settings.global_quota_mode },
            Some(Match::Override(requests_per_unit, unit)) => Planned::Counted(Counted {
                key: counter_key(&settings.cache_key_prefix, domain, entries, &[], unit, now),
                hits,
                unit,
                requests_per_unit,
                name: Arc::from(""),
                shadow_mode: false,
                quota: settings.global_quota_mode,
                stat: StatRef::Dynamic(override_stat_key(domain, entries)),
                algorithm: Algorithm::FixedWindow,
                previous_key: None,
            }),
            Some(Match::Config(found)) => {
                let limit = found.limit;
                if let Some(found) = found.metadata {
                    metadata.set(index, found);
                }
                if limit.unlimited {
                    Planned::Unlimited
                } else if !limit.name.is_empty() && replaced.contains(&&*limit.name) {
                    Planned::NoLimit { quota: settings.global_quota_mode }
                } else {
                    let unit = limit.unit.expect("validated: a limited limit has a unit");
                    let stat = match &limit.dynamic_stat_levels {
                        Some(levels) => StatRef::Dynamic(dynamic_stat_key(domain, levels, entries)),
                        None => StatRef::Limit(limit.id),
                    };
                    let (key, previous_key) =
                        algorithm_keys(limit.algorithm, &settings.cache_key_prefix, domain, entries, limit, unit, now);
                    Planned::Counted(Counted {
                        key,
                        hits,
                        unit,
                        requests_per_unit: limit.requests_per_unit,
                        name: limit.name.clone(),
                        shadow_mode: limit.shadow_mode,
                        quota: limit.quota_mode || settings.global_quota_mode,
                        stat,
                        algorithm: limit.algorithm,
                        previous_key,
                    })
                }
            }
        };
        descriptors.push(planned);
    }
    Plan { descriptors, metadata: metadata.0, domain_found }
}

thread_local! {
    /// The composite key of the level being looked up (`key_value`), reused by every request
    /// this thread plans instead of allocated per request; at most [`SCRATCH_KEPT_BYTES`] of it
    /// outlives a request.
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// The most the per-thread lookup buffer keeps between requests: longer entries (a request
/// can carry megabytes) get a buffer of their own, dropped after their request.
const SCRATCH_KEPT_BYTES: usize = 4096;

/// The matched nodes' metadata by descriptor index, allocated only once some node has any (most
/// configs have none).
#[derive(Default)]
struct MetadataList(Vec<Option<Arc<Metadata>>>);

impl MetadataList {
    fn set(&mut self, index: usize, metadata: &Arc<Metadata>) {
        if self.0.len() <= index {
            self.0.resize(index + 1, None);
        }
        self.0[index] = Some(metadata.clone());
    }
}

enum Match<'a> {
    Config(super::config::Matched<'a>),
    Override(u32, Unit),
}

/// The keys of a limit's counters. Fixed windows keep the reference's keys. The others are
/// Gatehouse's own and hash-tagged on the descriptor (`{…}`), so a sliding window's two counters
/// live in one Redis Cluster slot: `{<reference key without the window>}<window start>` for
/// the sliding window (this window's, and the previous one's) and `{…}tb` for a token bucket.
fn algorithm_keys(
    algorithm: Algorithm,
    prefix: &str,
    domain: &str,
    entries: &[Entry],
    limit: &super::Limit,
    unit: Unit,
    now: u64,
) -> (String, Option<String>) {
    if algorithm == Algorithm::FixedWindow {
        return (counter_key(prefix, domain, entries, &limit.shared_values, unit, now), None);
    }
    let mut base = String::from("{");
    base.push_str(&counter_key_base(prefix, domain, entries, &limit.shared_values));
    base.push('}');
    match algorithm {
        Algorithm::SlidingWindow => {
            let start = unit.window_start(now);
            let previous = format!("{base}{}", start.saturating_sub(unit.seconds()));
            (format!("{base}{start}"), Some(previous))
        }
        _ => (base + "tb", None),
    }
}

/// The counter key, byte for byte the reference's:
/// `<prefix><domain>_` + `<key>_<value>_` per entry + `<window start>`. A value matched through a
/// `share_threshold` wildcard is replaced by the pattern so all such values share one counter.
pub fn counter_key(
    prefix: &str,
    domain: &str,
    entries: &[Entry],
    shared_values: &[Option<String>],
    unit: Unit,
    now: u64,
) -> String {
    let mut key = counter_key_base(prefix, domain, entries, shared_values);
    key.push_str(itoa::Buffer::new().format(unit.window_start(now)));
    key
}

/// The reference's key up to its window start: `<prefix><domain>_<key>_<value>_…`.
fn counter_key_base(prefix: &str, domain: &str, entries: &[Entry], shared_values: &[Option<String>]) -> String {
    let mut key = String::with_capacity(
        prefix.len() + domain.len() + 12 + entries.iter().map(|e| e.key.len() + e.value.len() + 2).sum::<usize>(),
    );
    key.push_str(prefix);
    key.push_str(domain);
    key.push('_');
    for (i, entry) in entries.iter().enumerate() {
        key.push_str(&entry.key);
        key.push('_');
        match shared_values.get(i) {
            Some(Some(pattern)) => key.push_str(pattern),
            _ => key.push_str(&entry.value),
        }
        key.push('_');
    }
    key
}

/// What the store (or the local over-limit cache) said about one counted descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterValue {
    /// The counter after adding `applied` (which may be less than the descriptor's hits when
    /// increments are stopped for over-limit requests).
    Counted { after: u64, applied: u64 },
    /// The key is known to be over its limit in this window; the store was not asked.
    OverLimitInLocalCache,
    /// A sliding window's counters: this window's after adding the hits, and the previous one's.
    Sliding { current: u64, previous: u64 },
    /// A token bucket's step: whether the hits fitted, and the arrival time after it.
    Bucket { allowed: bool, tat_us: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok,
    OverLimit,
}

impl Code {
    /// The proto's name for the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::OverLimit => "OVER_LIMIT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentLimit {
    pub requests_per_unit: u32,
    pub unit: Unit,
    pub name: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorStatus {
    pub code: Code,
    pub current_limit: Option<CurrentLimit>,
    pub limit_remaining: u32,
    pub duration_until_reset: Option<u64>,
}

impl DescriptorStatus {
    fn no_limit() -> DescriptorStatus {
        DescriptorStatus { code: Code::Ok, current_limit: None, limit_remaining: 0, duration_until_reset: None }
    }

    /// OK with the counted limit, nothing remaining yet (callers fill in the count).
    fn limited(counted: &Counted, now: u64) -> DescriptorStatus {
        DescriptorStatus {
            code: Code::Ok,
            current_limit: Some(CurrentLimit {
                requests_per_unit: counted.requests_per_unit,
                unit: counted.unit,
                name: counted.name.clone(),
            }),
            limit_remaining: 0,
            duration_until_reset: Some(counted.unit.until_reset(now)),
        }
    }

    fn unlimited() -> DescriptorStatus {
        DescriptorStatus { limit_remaining: u32::MAX, ..DescriptorStatus::no_limit() }
    }
}

/// Statistics of one counted descriptor, named as the reference names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatDelta {
    pub total_hits: u64,
    pub within_limit: u64,
    pub near_limit: u64,
    pub over_limit: u64,
    pub over_limit_with_local_cache: u64,
    pub shadow_mode: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub overall: Code,
    pub statuses: Vec<DescriptorStatus>,
    /// `RateLimit-*` headers, when enabled and a limited status exists, then `Retry-After`
    /// when enabled and the answer is OVER_LIMIT.
    pub headers: Vec<(String, String)>,
    /// Per descriptor, for counted ones.
    pub stats: Vec<Option<StatDelta>>,
    /// Keys found over their limit, with their window length, for the local cache.
    pub over_limit_keys: Vec<(String, u64)>,
    /// Global shadow mode turned an OVER_LIMIT answer into OK.
    pub global_shadow_applied: bool,
}

/// Turns counter values into the answer. `values[i]` must be `Some` for every counted descriptor.
pub fn decide(
    plan: &Plan,
    values: &[Option<CounterValue>],
    settings: &EvaluationSettings,
    now: impl Into<Now>,
) -> Verdict {
    let now = now.into();
    let mut statuses = Vec::with_capacity(plan.descriptors.len());
    let mut stats = Vec::with_capacity(plan.descriptors.len());
    let mut over_limit_keys = Vec::new();
    let mut any_enforced_over = false;
    let mut quota_count = 0usize;
    let mut quota_over = 0usize;

    for (planned, value) in plan.descriptors.iter().zip(values) {
        match planned {
            Planned::NoLimit { quota } => {
                if *quota {
                    quota_count += 1;
                }
                statuses.push(DescriptorStatus::no_limit());
                stats.push(None);
            }
            Planned::Unlimited => {
                statuses.push(DescriptorStatus::unlimited());
                stats.push(None);
            }
            Planned::Counted(counted) => {
                let value = value.expect("a value for every counted descriptor");
                let (mut status, delta, newly_over) = judge(counted, value, settings.near_limit_ratio, now);
                // Only fixed windows end at a known instant, which the local cache needs.
                let newly_over = newly_over && counted.algorithm == Algorithm::FixedWindow;
                if newly_over {
                    over_limit_keys.push((counted.key.clone(), counted.unit.seconds()));
                }
                if status.code == Code::OverLimit && counted.shadow_mode {
                    status.code = Code::Ok;
                }
                if counted.quota {
                    quota_count += 1;
                    if status.code == Code::OverLimit {
                        quota_over += 1;
                    }
                } else if status.code == Code::OverLimit {
                    any_enforced_over = true;
                }
                statuses.push(status);
                stats.push(Some(delta));
            }
        }
    }

    let mut overall =
        if any_enforced_over || (quota_count > 0 && quota_over == quota_count) { Code::OverLimit } else { Code::Ok };
    let mut global_shadow_applied = false;
    if overall == Code::OverLimit && settings.global_shadow_mode {
        overall = Code::Ok;
        global_shadow_applied = true;
    }
    let mut headers = match &settings.response_headers {
        Some(names) => response_headers(plan, &statuses, names),
        None => Vec::new(),
    };
    if overall == Code::OverLimit && settings.retry_after {
        headers.push((RETRY_AFTER.to_string(), retry_after(plan, &statuses).to_string()));
    }
    Verdict { overall, statuses, headers, stats, over_limit_keys, global_shadow_applied }
}

/// The answer when the store failed and the failure mode says to answer anyway: `allow`
/// answers OK with no limit information (nothing was counted, so nothing is known), `deny`
/// answers OVER_LIMIT for every descriptor that would have been counted. Without `Retry-After`
/// (whatever `LIMIT_RETRY_AFTER_HEADER_ENABLED` says): no count decided this answer, and how long
/// the outage lasts is unknown, so the end of a window (weeks away for a month's limit) would
/// be a made-up wait; the client's own backoff applies.
pub fn verdict_without_store(plan: &Plan, deny: bool, now: impl Into<Now>) -> Verdict {
    let now = now.into().seconds;
    let mut any_denied = false;
    let statuses = plan
        .descriptors
        .iter()
        .map(|planned| match planned {
            Planned::Counted(counted) if deny => {
                any_denied = true;
                DescriptorStatus { code: Code::OverLimit, ..DescriptorStatus::limited(counted, now) }
            }
            Planned::Unlimited => DescriptorStatus::unlimited(),
            _ => DescriptorStatus::no_limit(),
        })
        .collect::<Vec<_>>();
    Verdict {
        overall: if any_denied { Code::OverLimit } else { Code::Ok },
        statuses,
        headers: Vec::new(),
        stats: vec![None; plan.descriptors.len()],
        over_limit_keys: Vec::new(),
        global_shadow_applied: false,
    }
}

/// One counted descriptor's status and statistics; the bool says "newly found over the limit".
fn judge(counted: &Counted, value: CounterValue, near_ratio: f32, now: Now) -> (DescriptorStatus, StatDelta, bool) {
    match value {
        CounterValue::Sliding { current, previous } => {
            // Judged as a fixed window holding the estimate, then told when it frees up.
            let window = counted.unit.seconds();
            let estimate = sliding_estimate(current, previous, window, now.micros).ceil() as u64;
            let value = CounterValue::Counted { after: estimate, applied: counted.hits.min(estimate) };
            let (mut status, delta, over) = judge_window(counted, value, near_ratio, now.seconds);
            if status.code == Code::OverLimit {
                let limit = u64::from(counted.requests_per_unit);
                status.duration_until_reset =
                    Some(sliding_wait(current, previous, limit, counted.hits.max(1), window, now.micros));
            }
            (status, delta, over)
        }
        CounterValue::Bucket { allowed, tat_us } => judge_bucket(counted, allowed, tat_us, near_ratio, now),
        value => judge_window(counted, value, near_ratio, now.seconds),
    }
}

fn judge_bucket(
    counted: &Counted,
    allowed: bool,
    tat_us: u64,
    near_ratio: f32,
    now: Now,
) -> (DescriptorStatus, StatDelta, bool) {
    let bucket = counted.bucket().expect("a bucket value for a token bucket");
    let (remaining, wait) = bucket_status(&bucket, allowed, tat_us, now.micros);
    let hits = counted.hits;
    let mut delta = StatDelta { total_hits: hits, ..StatDelta::default() };
    let mut status = DescriptorStatus::limited(counted, now.seconds);
    status.duration_until_reset = Some(wait);
    let capacity = bucket.tolerance_us / bucket.per_hit_us;
    let near_threshold = (capacity as f32 * near_ratio).floor() as u64;
    if allowed {
        status.limit_remaining = remaining.min(u64::from(u32::MAX)) as u32;
        delta.within_limit = hits;
        if capacity.saturating_sub(remaining) > near_threshold {
            delta.near_limit = hits;
        }
    } else {
        status.code = Code::OverLimit;
        delta.over_limit = hits;
        if counted.shadow_mode {
            delta.shadow_mode = hits;
        }
    }
    (status, delta, false)
}

/// The reference's fixed window judgement.
fn judge_window(
    counted: &Counted,
    value: CounterValue,
    near_ratio: f32,
    now: u64,
) -> (DescriptorStatus, StatDelta, bool) {
    let limit = u64::from(counted.requests_per_unit);
    let near_threshold = (counted.requests_per_unit as f32 * near_ratio).floor() as u64;
    let hits = counted.hits;
    let mut delta = StatDelta { total_hits: hits, ..StatDelta::default() };
    let mut status = DescriptorStatus::limited(counted, now);
    let newly_over = match value {
        CounterValue::OverLimitInLocalCache => {
            status.code = Code::OverLimit;
            delta.over_limit = hits;
            delta.over_limit_with_local_cache = hits;
            if counted.shadow_mode {
                delta.shadow_mode = hits;
            }
            false
        }
        CounterValue::Counted { after, applied } => {
            let before = after.saturating_sub(applied);
            if after > limit {
                status.code = Code::OverLimit;
                let over = if before >= limit { applied } else { after - limit };
                delta.over_limit = over;
                if before < limit {
                    delta.near_limit = limit - near_threshold.max(before);
                }
                if counted.shadow_mode {
                    delta.shadow_mode = over;
                }
                true
            } else {
                status.limit_remaining = (limit - after) as u32;
                delta.within_limit = applied;
                if after > near_threshold {
                    delta.near_limit = if before >= near_threshold { applied } else { after - near_threshold };
                }
                false
            }
        }
        CounterValue::Sliding { .. } | CounterValue::Bucket { .. } => unreachable!("judged by their own"),
    };
    (status, delta, newly_over)
}

fn response_headers(plan: &Plan, statuses: &[DescriptorStatus], names: &HeaderNames) -> Vec<(String, String)> {
    let mut chosen: Option<&DescriptorStatus> = None;
    for (planned, status) in plan.descriptors.iter().zip(statuses) {
        let Planned::Counted(counted) = planned else {
            continue;
        };
        let enforced_over = status.code == Code::OverLimit && !counted.quota;
        let smaller = chosen.is_none_or(|best| status.limit_remaining < best.limit_remaining);
        if enforced_over || smaller {
            chosen = Some(status);
        }
    }
    let Some(status) = chosen else {
        return Vec::new();
    };
    let Some(limit) = &status.current_limit else {
        return Vec::new();
    };
    vec![
        (names.limit.clone(), limit.requests_per_unit.to_string()),
        (names.remaining.clone(), status.limit_remaining.to_string()),
        (names.reset.clone(), status.duration_until_reset.unwrap_or_else(|| limit.unit.seconds()).to_string()),
    ]
}

/// Whole seconds until an OVER_LIMIT request would pass, at least 1 (`Retry-After` has no
/// fractions, and 0 would invite an immediate retry that is refused again). Every enforced
/// descriptor over its limit must have reset: the longest of their waits. A quota answer is
/// OVER_LIMIT only while all its quota descriptors are over, so it ends when the first resets:
/// the shortest of theirs. Each wait is the status's `duration_until_reset`, which each
/// algorithm computes as the time until a hit is available again (the window's end for a fixed
/// window, the estimate's decay for a sliding window, the refill for a token bucket).
fn retry_after(plan: &Plan, statuses: &[DescriptorStatus]) -> u64 {
    let mut enforced = 0;
    let mut quota: Option<u64> = None;
    let mut quota_all_over = true;
    for (planned, status) in plan.descriptors.iter().zip(statuses) {
        let quota_descriptor = match planned {
            Planned::Counted(counted) => counted.quota,
            Planned::NoLimit { quota } => *quota,
            Planned::Unlimited => false,
        };
        let over = status.code == Code::OverLimit;
        let wait = status.duration_until_reset.unwrap_or(0);
        if quota_descriptor {
            quota_all_over &= over;
            quota = Some(quota.map_or(wait, |shortest| shortest.min(wait)));
        } else if over {
            enforced = enforced.max(wait);
        }
    }
    let quota = if quota_all_over { quota.unwrap_or(0) } else { 0 };
    enforced.max(quota).max(1)
}

/// Addends under `STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT`: given the counters' current values,
/// increment only the descriptors that would go over their limit, or all of them if none would.
/// This keeps the other descriptors' quota when one descriptor of the request is over.
pub fn addends_when_stopping_over_limit(counted: &[&Counted], current: &[u64]) -> Vec<u64> {
    let exceeding: Vec<bool> = counted
        .iter()
        .zip(current)
        .map(|(c, now)| now.saturating_add(c.hits) > u64::from(c.requests_per_unit))
        .collect();
    if exceeding.iter().any(|&e| e) {
        counted.iter().zip(&exceeding).map(|(c, &e)| if e { c.hits } else { 0 }).collect()
    } else {
        counted.iter().map(|c| c.hits).collect()
    }
}

/// Deep merge of the metadata of the descriptors that were not over their limit; on conflicts
/// the first value wins.
pub fn merged_metadata(plan: &Plan, verdict: &Verdict) -> Metadata {
    let mut merged = Metadata::new();
    for ((metadata, status), planned) in plan.metadata.iter().zip(&verdict.statuses).zip(&plan.descriptors) {
        if status.code == Code::OverLimit || matches!(planned, Planned::Unlimited) {
            continue;
        }
        if let Some(metadata) = metadata {
            merge_into(&mut merged, metadata);
        }
    }
    merged
}

fn merge_into(target: &mut Metadata, source: &Metadata) {
    for (key, value) in source {
        match (target.get_mut(key), value) {
            (Some(serde_json::Value::Object(existing)), serde_json::Value::Object(incoming)) => {
                merge_into(existing, incoming)
            }
            (Some(_), _) => {}
            (None, _) => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
