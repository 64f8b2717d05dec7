//! Valgrind client requests for callgrind, so a profile run counts only the measured requests:
//! set-up (a million API keys, 100k rules) runs uninstrumented, the warm-up is zeroed away, and
//! the counts are dumped right after the last measured request.
//!
//! A client request is a no-op instruction sequence that valgrind recognises (valgrind.h's
//! `VALGRIND_DO_CLIENT_REQUEST` for amd64: four rotations of rdi that add up to 128 bits, then
//! `xchg rbx, rbx`; the request's address in rax, the answer in rdx). Outside valgrind it returns
//! the default and costs a few cycles. Written here rather than through a C shim so the bench
//! needs no valgrind headers to build.

/// `VG_USERREQ_TOOL_BASE('C', 'T')` from callgrind.h, and the requests after it.
const CALLGRIND_BASE: u64 = ((b'C' as u64) << 24) | ((b'T' as u64) << 16);
const DUMP_STATS: u64 = CALLGRIND_BASE;
const ZERO_STATS: u64 = CALLGRIND_BASE + 1;
const START_INSTRUMENTATION: u64 = CALLGRIND_BASE + 4;
const STOP_INSTRUMENTATION: u64 = CALLGRIND_BASE + 5;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn client_request(default: u64, request: u64) -> u64 {
    let args: [u64; 6] = [request, 0, 0, 0, 0, 0];
    let mut result = default;
    // SAFETY: the sequence only rotates rdi (declared clobbered) by a full 128 bits and swaps rbx
    // with itself; valgrind reads the six words behind rax, which live until the asm ends.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") result,
            in("rax") args.as_ptr(),
            inout("rdi") 0u64 => _,
            options(nostack),
        );
    }
    result
}

#[cfg(not(target_arch = "x86_64"))]
fn client_request(default: u64, _request: u64) -> u64 {
    default
}

pub fn start_instrumentation() {
    client_request(0, START_INSTRUMENTATION);
}

pub fn stop_instrumentation() {
    client_request(0, STOP_INSTRUMENTATION);
}

/// Forgets everything counted so far (the warm-up).
pub fn zero_stats() {
    client_request(0, ZERO_STATS);
}

/// Writes the counts since the last zero to the next numbered dump file.
pub fn dump_stats() {
    client_request(0, DUMP_STATS);
}
