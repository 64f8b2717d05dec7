//! `ext-authz validate FILE [--no-secrets]`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use ext_authz::config::{SecretFrom, SecretNeed};
use ext_authz::oidc::StoreSettings;

/// `validate FILE [--no-secrets]`: with `no_secrets`, no secret value is read (environment
/// variables, secret files, upstream credential files): each is listed as a start's need, and
/// the API key files (hashes only) are read when they are there and listed when they are not
/// (a Secret mounted at run time).
pub fn validate(file: PathBuf, no_secrets: bool, env: &HashMap<String, String>) -> ExitCode {
    let loaded = if no_secrets {
        ext_authz::config::load_without_secrets(&file, env)
    } else {
        ext_authz::config::load(&file, env).map(|config| (config, Vec::new()))
    };
    let (config, mut needs) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let keys = match &config.api_keys {
        Some(location) if no_secrets && !location.exists() => {
            let from = match &location.dir {
                Some(dir) => SecretFrom::Dir(dir.clone()),
                None => SecretFrom::File(location.path().into()),
            };
            needs.push(SecretNeed { key: "api_keys".into(), from });
            0
        }
        Some(location) => match ext_authz::key_files::load(location) {
            Ok(store) => store.len(),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        },
        None => 0,
    };
    if no_secrets {
        for (i, credential) in config.upstream_credentials.iter().enumerate() {
            if let ext_authz::upstream::Source::File(path) = &credential.source {
                let key = format!("upstream_credentials[{i}] ({})", credential.name);
                needs.push(SecretNeed { key, from: SecretFrom::File(path.clone()) });
            }
        }
    } else if let Err(e) = ext_authz::upstream::check_files(&config.upstream_credentials) {
        // The credential files a start would read (token endpoints are not called).
        eprintln!("{}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    // The files a start would write (a revocations file on a read-only volume stops a start).
    // Without secrets (a CI job), a directory that only a deployment's volume provides is listed.
    let revocations = config.oidc.as_ref().and_then(|oidc| match &oidc.store {
        StoreSettings::Cookie { revocations_file: Some(path) } => path.parent(),
        _ => None,
    });
    if let Some(dir) = revocations.filter(|dir| no_secrets && !dir.as_os_str().is_empty() && !dir.exists()) {
        let key = "writable, for oidc.session.revocations_file".to_string();
        needs.push(SecretNeed { key, from: SecretFrom::Dir(dir.to_path_buf()) });
    } else if let Err(e) = config.oidc.as_ref().map_or(Ok(()), ext_authz::oidc::check_files) {
        eprintln!("{}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    for warning in config.warnings() {
        eprintln!("warning: {}: {warning}", file.display());
    }
    println!(
        "OK{}: {} JWT providers, {} route rules, {} API keys, {} upstream credentials",
        if no_secrets { " (secrets not read)" } else { "" },
        config.engine.providers.len(),
        config.engine.routes.rules.len(),
        keys,
        config.upstream_credentials.len()
    );
    if no_secrets {
        match needs.as_slice() {
            [] => println!("a start reads no secret"),
            needs => {
                println!("a start needs:");
                for need in needs {
                    println!("  {need}");
                }
            }
        }
    }
    if let Some(oidc) = &config.oidc {
        println!("{}", oidc.worst_case_summary());
    }
    ExitCode::SUCCESS
}
