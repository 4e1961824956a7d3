//! Commands on the data directory, run while no server holds it: `import`, `export`,
//! `admin init`, `admin site-info`. Writes go through [`Node`] as the trusted in-process principal, or through the
//! registry's bulk import, so they obey the same rules as a write over the API.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;

use crate::auth::{self, Admin};
use crate::config::Config;
use crate::handle::key::ServerKey;
use crate::handle::site_info;
use crate::identifier::{self, Identifier};
use crate::node::{Node, PutOptions, WriteError};
use crate::registry::Registry;
use crate::{dns, import, record};

/// `idnode import FILE`: JSON Lines, or with `zone_file` a DNS zone file, from `file` (`-` for
/// standard input), `batch` records per transaction, with a progress bar on standard error.
pub fn import(config: &Config, file: &Path, batch: usize, zone_file: bool) -> anyhow::Result<()> {
    let registry = Registry::open_with_cache(&config.data_dir, Some(config.registry.cache_bytes()))?;
    let from_stdin = file.as_os_str() == "-";
    let (input, bar): (Box<dyn std::io::Read + Send>, _) = if from_stdin {
        let style =
            indicatif::ProgressStyle::with_template("{spinner} {bytes} read, {binary_bytes_per_sec}, {elapsed}");
        (Box::new(std::io::stdin()), indicatif::ProgressBar::new_spinner().with_style(style?))
    } else {
        let input = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let style =
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}");
        let bar = indicatif::ProgressBar::new(input.metadata()?.len()).with_style(style?);
        (Box::new(input), bar)
    };
    let started = Instant::now();
    let input = BufReader::with_capacity(1 << 20, input);
    let context = || match from_stdin {
        true => "importing standard input".to_owned(),
        false => format!("importing {}", file.display()),
    };
    let progress = |bytes| bar.set_position(bytes);
    let (report, zone) = if zone_file {
        let result = dns::zone_import::import(&registry, &config.dns.apex, input, batch, progress);
        bar.finish_and_clear();
        let zone = result.with_context(context)?;
        (zone.import, Some(zone))
    } else {
        let result = import::import(&registry, input, batch, progress);
        bar.finish_and_clear();
        (result.with_context(context)?, None)
    };
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "imported {} identifiers from {} lines in {secs:.1} s ({:.0}/s) into {}",
        report.records,
        report.lines,
        report.records as f64 / secs.max(1e-9),
        config.data_dir.display()
    );
    if let Some(zone) = zone {
        let prefix = if zone.prefix.is_empty() { String::new() } else { format!(" (prefix {})", zone.prefix) };
        eprintln!(
            "zone {}{prefix}: its SOA ({}), NS ({}) and name server addresses ({}) are the zone's settings, \
             not stored: the node serves its own from [dns]",
            zone.apex, zone.soa, zone.nameservers, zone.glue
        );
    }
    Ok(())
}

/// `idnode export`: every identifier as JSON Lines, or with `zone_file` the node's first zone
/// as an RFC 1035 zone file; to `output` or standard output.
pub fn export(config: &Config, output: Option<&Path>, zone_file: bool) -> anyhow::Result<()> {
    let registry = Registry::open_with_cache(&config.data_dir, Some(config.registry.cache_bytes()))?;
    let out: Box<dyn Write> = match output {
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            Box::new(BufWriter::new(file))
        }
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let count = if zone_file {
        let zone = dns::zone_config(&config.dns, &config.dns.zones())?.remove(0);
        dns::zonefile::write(&registry, &zone, out)?
    } else {
        import::export(&registry, out)?
    };
    eprintln!("exported {count} identifiers");
    Ok(())
}

/// `idnode admin init`: creates `300:0.NA/PREFIX` with every right under `prefix`, its secret
/// read from the first line of `secret_file` or generated and printed once; and the Handle
/// server key, unless the data directory has one.
pub fn admin_init(config: &Config, prefix: &str, secret_file: Option<&Path>) -> anyhow::Result<()> {
    identifier::check_prefix(prefix).with_context(|| format!("--prefix {prefix}"))?;
    let id = Identifier::from_parts(identifier::PREFIX_AUTHORITY, prefix)?;
    let mut node = Node::new(
        Arc::new(Registry::open_with_cache(&config.data_dir, Some(config.registry.cache_bytes()))?),
        config.dns.zones(),
    )?;
    node.set_seal_key(Arc::new(crate::secret::SealKey::load_or_create(&config.data_dir)?));
    // The key first: it is independent of the administrator, and a node initialised before
    // keys existed gets one by running the command again.
    let (_, created) = ServerKey::load_or_create(&config.data_dir)?;
    let key_path = ServerKey::path(&config.data_dir);
    let key_line = match created {
        true => format!("Handle server key created: {} (RSA 2048, readable by its owner only)", key_path.display()),
        false => format!("Handle server key kept: {}", key_path.display()),
    };
    writeln!(std::io::stdout().lock(), "{key_line}")?;
    let (secret, generated) = match secret_file {
        Some(path) => (super::first_line(path)?, false),
        None => (crate::secret::generate_secret(), true),
    };
    let values = auth::prefix_admin_values((300, id.as_str()), Some(&secret), record::unix_now());
    let options = PutOptions { no_overwrite: true, ..PutOptions::default() };
    match node.put(&Admin::node(), &id, values, &options) {
        Err(WriteError::AlreadyExists { identifier }) => anyhow::bail!(
            "{identifier} already exists in {}: the node has an administrator for {prefix}",
            config.data_dir.display()
        ),
        result => result?,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "administrator 300:{id} created with every right under {prefix}")?;
    if generated {
        writeln!(out, "secret: {secret}")?;
        writeln!(
            out,
            "(shown once; the node stores its salted hash and a copy sealed with {})",
            crate::secret::SealKey::FILE
        )?;
    }
    Ok(())
}

/// `idnode admin keygen`: an RSA key pair for an administrator, the private key in CNRI's key
/// file format at `out` (encrypted with the passphrase on the first line of `passphrase_file`),
/// the public key at `out.pub`; prints the `HS_PUBKEY` value to register at `index`.
pub fn admin_keygen(out: &Path, passphrase_file: Option<&Path>, index: u32) -> anyhow::Result<()> {
    use base64::Engine as _;
    let passphrase = passphrase_file.map(super::first_line).transpose()?;
    let public_path = PathBuf::from(format!("{}.pub", out.display()));
    for path in [out, public_path.as_path()] {
        anyhow::ensure!(!path.exists(), "{} exists; a key file is never overwritten", path.display());
    }
    let key =
        crate::handle::admin_key::AdminKey::generate().map_err(|e| anyhow::anyhow!("cannot generate a key: {e}"))?;
    let private = key.private_file(passphrase.as_deref().map(str::as_bytes));
    crate::secret::write_private(out, &private).with_context(|| format!("cannot write {}", out.display()))?;
    let public = key.public_value();
    std::fs::write(&public_path, &public).with_context(|| format!("cannot write {}", public_path.display()))?;
    let value = serde_json::json!({
        "index": index,
        "type": "HS_PUBKEY",
        "data": {"format": "base64", "value": base64::engine::general_purpose::STANDARD.encode(&public)},
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{value}")?;
    let encrypted = if passphrase.is_some() { "encrypted" } else { "NOT encrypted: keep it private" };
    eprintln!(
        "wrote {} (RSA {} bits, {encrypted}) and {}",
        out.display(),
        crate::handle::admin_key::KEY_BITS,
        public_path.display()
    );
    eprintln!("register the value above under the administrator (idnode id add, or the HTTP API)");
    Ok(())
}

/// `idnode admin site-info`: the node's own site as CNRI's `siteinfo.json` on standard output,
/// or with `binary` as `siteinfo.bin` in that file, built as `idnode serve` builds it from the
/// config and the server key, so a Handle client can use the node as its root.
pub fn site_info(config: &Config, binary: Option<&Path>) -> anyhow::Result<()> {
    let key = ServerKey::load(&config.data_dir)?;
    if key.is_none() {
        eprintln!(
            "warning: no Handle server key in {}: the site publishes none, so clients cannot verify \
             certified answers; `idnode admin init` creates it",
            config.data_dir.display()
        );
    }
    let handle = &config.handle;
    let tls = config.http.tls_cert.is_some() && config.http.tls_key.is_some();
    let http = site_info::HttpListener { addr: config.http.listen, tls };
    let site = site_info::build(handle, handle.listen, Some(http), key.as_ref())?;
    let site = site_info::as_mirror(site, config.replication.mirror.is_some());
    match binary {
        Some(path) => {
            let bytes = site.encode();
            std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
        }
        None => {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &site)?;
            writeln!(out)?;
        }
    }
    Ok(())
}
