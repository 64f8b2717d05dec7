//! `ext-authz api-key new`: the key on stderr, what stores its hash on stdout.

use std::process::ExitCode;

use ext_authz::core::apikeys::{hash_key, new_key};
use ext_authz::key_files::printed::{Format, NewEntry};

const OPTIONS: &str = "the options are --client-id ID, --scopes a,b, --org-id ORG and --format file|secret";

/// `api-key new [--client-id ID] [--scopes a,b] [--org-id ORG] [--format file|secret]`.
pub fn new(args: &[&str], exit_usage: u8) -> ExitCode {
    let usage = |problem: &str, fix: &str| {
        eprintln!("ext-authz: {problem}; {fix}");
        ExitCode::from(exit_usage)
    };
    let mut entry = NewEntry { hash: [0; 32], client_id: "my-client".into(), scopes: Vec::new(), org_id: None };
    let mut format = Format::File;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let Some(value) = rest.next() else {
            return usage(&format!("api-key new: {flag} needs a value"), OPTIONS);
        };
        match *flag {
            "--client-id" => entry.client_id = value.to_string(),
            "--scopes" => {
                entry.scopes = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
            }
            "--org-id" => entry.org_id = Some(value.to_string()),
            "--format" => match Format::parse(value) {
                Some(chosen) => format = chosen,
                None => {
                    let problem = format!("api-key new: --format {value} is not {}", Format::SPELLINGS);
                    return usage(&problem, "file (the default) prints a key file, secret the Kubernetes Secret");
                }
            },
            other => return usage(&format!("api-key new: unknown option {other}"), OPTIONS),
        }
    }
    let key = new_key();
    entry.hash = hash_key(&key);
    // The key on stderr, the entry on stdout: `api-key new > billing.yaml` stores the hash only.
    eprintln!("The new API key (give it to the client; only its hash is printed below, to store):\n{key}");
    print!("{}", entry.print(format));
    ExitCode::SUCCESS
}
