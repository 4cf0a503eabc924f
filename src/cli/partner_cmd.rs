//! `keywarden partner …`: rehearse GitHub's secret-scanning reports against
//! a deployment — make a key pair, sign a body, send it as GitHub does.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keywarden::partner::{self, KEY_ID_HEADER, SIGNATURE_HEADER};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum PartnerCommand {
    /// Make a P-256 key pair for rehearsals: PRIVATE.pem and the public-keys
    /// JSON that `serve --github-keys-file` trusts.
    Keygen {
        /// Directory for `private.pem` and `github-keys.json`.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Key identifier to list (default: SHA-256 of the public key).
        #[arg(long, value_name = "ID")]
        key_id: Option<String>,
    },
    /// Print the two headers GitHub would send with BODY.
    Sign(SignArgs),
    /// POST BODY to URL signed as GitHub does, and print the answer.
    Send {
        /// The partner endpoint, e.g. https://staging.example.com/github/secret-scanning
        url: String,
        #[command(flatten)]
        sign: SignArgs,
    },
}

#[derive(Args)]
pub struct SignArgs {
    /// P-256 private key (PKCS#8 or SEC1 PEM).
    #[arg(long, value_name = "PRIVATE.pem")]
    key: PathBuf,
    /// The key identifier the receiver knows the public key by.
    #[arg(long, value_name = "ID")]
    key_id: String,
    /// The report body (a file, or `-` for stdin), signed byte for byte.
    #[arg(value_name = "BODY")]
    body: PathBuf,
}

impl SignArgs {
    fn sign(&self) -> anyhow::Result<(Vec<u8>, String)> {
        let pem = std::fs::read_to_string(&self.key)
            .with_context(|| format!("cannot read {}", self.key.display()))?;
        let key =
            partner::load_signing_key(&pem).with_context(|| format!("{}", self.key.display()))?;
        let body = read_body(&self.body)?;
        let signature = partner::sign_body(&key, &body);
        Ok((body, signature))
    }
}

fn read_body(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut body)?;
    } else {
        body = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(body)
}

pub fn run(cmd: PartnerCommand) -> anyhow::Result<u8> {
    match cmd {
        PartnerCommand::Keygen { out, key_id } => keygen(&out, key_id),
        PartnerCommand::Sign(args) => {
            let (_, signature) = args.sign()?;
            println!("Github-Public-Key-Identifier: {}", args.key_id);
            println!("Github-Public-Key-Signature: {signature}");
            Ok(0)
        }
        PartnerCommand::Send { url, sign } => send(&url, &sign),
    }
}

fn keygen(out: &Path, key_id: Option<String>) -> anyhow::Result<u8> {
    let key = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("cannot encode the private key")?;
    let public = partner::public_key_pem(&key);
    let key_id = key_id.unwrap_or_else(|| keywarden::secret::sha256_hex(public.as_bytes()));
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let private_path = out.join("private.pem");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&private_path)
        .with_context(|| format!("cannot create {}", private_path.display()))?;
    std::io::Write::write_all(&mut file, private.as_bytes())?;
    let list = serde_json::json!({
        "public_keys": [{ "key_identifier": key_id, "key": public, "is_current": true }]
    });
    std::fs::write(
        out.join("github-keys.json"),
        serde_json::to_vec_pretty(&list)?,
    )?;
    println!("{key_id}");
    eprintln!(
        "wrote {} and {}; run `keywarden serve --github-keys-file {}`",
        private_path.display(),
        out.join("github-keys.json").display(),
        out.join("github-keys.json").display()
    );
    Ok(0)
}

fn send(url: &str, args: &SignArgs) -> anyhow::Result<u8> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        bail!("{url:?} is not an http(s) URL");
    }
    let (body, signature) = args.sign()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header(KEY_ID_HEADER, &args.key_id)
        .header(SIGNATURE_HEADER, &signature)
        .send(&body[..])
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    eprintln!("{status}");
    println!("{text}");
    Ok(if status.is_success() { 0 } else { 1 })
}
