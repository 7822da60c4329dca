//! Service and base images, built locally from `templates/<slug>/` around the static `decky`
//! binary, without any registry. Each image is tagged with a hash of its whole build context,
//! so an unchanged image is found and reused instead of rebuilt.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use bollard::{
    Docker, body_full,
    query_parameters::{BuildImageOptions, TagImageOptions},
};
use futures_util::StreamExt as _;
use sha2::{Digest, Sha256};

use crate::{
    docker::{is_not_found, retry},
    error::EngineError,
};

/// Template directory of the base (address-holder) image.
pub const BASE_TEMPLATE: &str = "base";
/// Largest template file accepted (persona assets are small; a huge file is a mistake).
const MAX_TEMPLATE_FILE: u64 = 64 << 20;

/// Where images come from.
#[derive(Debug, Clone)]
pub struct ImageSources {
    /// The static `decky` binary copied into every image.
    pub decky_bin: PathBuf,
    /// The `templates/` directory.
    pub templates: PathBuf,
    /// Rebuild every image, ignoring existing ones and Docker's layer cache.
    pub no_cache: bool,
}

/// Slugs that have a template (a `Dockerfile` in `templates/<slug>/`).
pub fn available(templates: &Path) -> Vec<String> {
    let mut slugs: Vec<String> = fs::read_dir(templates)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("Dockerfile").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|s| s != BASE_TEMPLATE)
        .collect();
    slugs.sort();
    slugs
}

/// Refuse a `decky` binary that is missing or dynamically linked: a `FROM scratch` image has
/// no loader or libc, so such a binary would only fail at container start.
fn read_static_binary(path: &Path) -> Result<Vec<u8>, EngineError> {
    let bad = |reason: String| EngineError::DeckyBinary {
        path: path.to_owned(),
        reason,
    };
    let bytes = fs::read(path).map_err(|e| bad(format!("cannot be read ({e})")))?;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return Err(bad("is not a 64-bit ELF executable".into()));
    }
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Err(bad("has a truncated ELF header".into()));
    };
    const PT_INTERP: u32 = 3;
    for i in 0..usize::from(phnum) {
        let at = usize::try_from(phoff).unwrap_or(usize::MAX);
        let off = at.saturating_add(i.saturating_mul(usize::from(phentsize)));
        let Some(p_type) = bytes
            .get(off..off.saturating_add(4))
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
        else {
            return Err(bad("has a truncated ELF program header table".into()));
        };
        if p_type == PT_INTERP {
            return Err(bad(
                "is dynamically linked (it needs a loader a scratch image does not have)".into(),
            ));
        }
    }
    Ok(bytes)
}

/// Every regular file under `dir`, by path relative to it, sorted (deterministic hash).
fn template_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, EngineError> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).map_err(|e| EngineError::Template {
            path: d.clone(),
            reason: e.to_string(),
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| EngineError::Template {
                path: d.clone(),
                reason: e.to_string(),
            })?;
            let path = entry.path();
            let meta = fs::metadata(&path).map_err(|e| EngineError::Template {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                if meta.len() > MAX_TEMPLATE_FILE {
                    return Err(EngineError::Template {
                        path,
                        reason: format!("larger than {MAX_TEMPLATE_FILE} bytes"),
                    });
                }
                let rel = path
                    .strip_prefix(dir)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let data = fs::read(&path).map_err(|e| EngineError::Template {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                files.insert(rel, data);
            }
        }
    }
    Ok(files)
}

/// A build context: the template's files plus `decky`, as a tar archive and its hash.
fn context(dir: &Path, decky: &[u8]) -> Result<(Vec<u8>, String), EngineError> {
    let mut files = template_files(dir)?;
    files.insert("decky".to_owned(), decky.to_vec());
    let mut hash = Sha256::new();
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in &files {
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update((data.len() as u64).to_le_bytes());
        hash.update(data);
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(if name == "decky" { 0o755 } else { 0o644 });
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, name, data.as_slice())
            .map_err(|e| EngineError::Template {
                path: dir.join(name),
                reason: e.to_string(),
            })?;
    }
    let tar = builder.into_inner().map_err(|e| EngineError::Template {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    Ok((tar, hex::encode(&hash.finalize()[..8])))
}

/// Build (or find) the images of `slugs` and of the base; returns slug → content-hash tag
/// (the base under [`BASE_TEMPLATE`]).
pub async fn ensure_images(
    docker: &Docker,
    sources: &ImageSources,
    slugs: &[String],
) -> Result<BTreeMap<String, String>, EngineError> {
    let have = available(&sources.templates);
    let missing: Vec<&str> = slugs
        .iter()
        .filter(|s| !have.contains(s))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(EngineError::NotEmulated {
            missing: missing.join(", "),
            available: have.join(", "),
        });
    }
    let base_dir = sources.templates.join(BASE_TEMPLATE);
    if !base_dir.join("Dockerfile").is_file() {
        return Err(EngineError::Template {
            path: base_dir.join("Dockerfile"),
            reason: "missing (the base image's template)".into(),
        });
    }
    let decky = read_static_binary(&sources.decky_bin)?;
    let mut tags = BTreeMap::new();
    let mut wanted: Vec<&str> = vec![BASE_TEMPLATE];
    wanted.extend(slugs.iter().map(String::as_str));
    wanted.dedup();
    for slug in wanted {
        if tags.contains_key(slug) {
            continue;
        }
        let dir = sources.templates.join(slug);
        let (tar, hash) = context(&dir, &decky)?;
        let repo = format!("{}/{slug}", decnet_fleet::IMAGE_NAMESPACE);
        let tag = format!("{repo}:{hash}");
        let present = match docker.inspect_image(&tag).await {
            Ok(_) => true,
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(EngineError::docker(format!("inspecting image {tag}"))(e)),
        };
        if present && !sources.no_cache {
            tracing::debug!(%tag, "image up to date");
        } else {
            build(docker, &dir, &tag, tar, sources.no_cache).await?;
        }
        // `:latest` too, so the dry-run compose file (which names `fleet/<slug>:latest`)
        // runs the same images.
        retry(&format!("tagging {tag}"), || {
            docker.tag_image(
                &tag,
                Some(TagImageOptions {
                    repo: Some(repo.clone()),
                    tag: Some("latest".to_owned()),
                }),
            )
        })
        .await?;
        tags.insert(slug.to_owned(), tag);
    }
    Ok(tags)
}

async fn build(
    docker: &Docker,
    dir: &Path,
    tag: &str,
    tar: Vec<u8>,
    no_cache: bool,
) -> Result<(), EngineError> {
    tracing::info!(%tag, context = %dir.display(), "building image");
    let fail = |reason: String| EngineError::ImageBuild {
        tag: tag.to_owned(),
        context: dir.to_owned(),
        reason,
    };
    let options = BuildImageOptions {
        t: Some(tag.to_owned()),
        nocache: no_cache,
        rm: true,
        forcerm: true,
        ..BuildImageOptions::default()
    };
    let mut stream = docker.build_image(options, None, Some(body_full(tar.into())));
    let mut last = String::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| fail(e.to_string()))?;
        if let Some(detail) = info.error_detail {
            return Err(fail(
                detail.message.unwrap_or_else(|| "unknown error".into()),
            ));
        }
        if let Some(line) = info.stream {
            let line = line.trim();
            if !line.is_empty() {
                tracing::debug!(%tag, "{line}");
                line.clone_into(&mut last);
            }
        }
    }
    match docker.inspect_image(tag).await {
        Ok(_) => Ok(()),
        Err(e) => Err(fail(format!(
            "no image after the build ({e}); last output: {last}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn context_hash_follows_content() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let (_, a) = context(dir.path(), b"one").unwrap();
        let (_, b) = context(dir.path(), b"one").unwrap();
        let (_, c) = context(dir.path(), b"two").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        fs::write(dir.path().join("motd"), "hi").unwrap();
        let (_, d) = context(dir.path(), b"one").unwrap();
        assert_ne!(a, d);
    }

    #[test]
    fn dynamic_and_missing_binaries_are_refused() {
        let err = read_static_binary(Path::new("/nonexistent/decky")).unwrap_err();
        assert!(err.to_string().contains("cannot be read"), "{err}");
        // /bin/sh is dynamically linked on Debian.
        let err = read_static_binary(Path::new("/bin/sh")).unwrap_err();
        assert!(err.to_string().contains("dynamically linked"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        fs::write(
            &junk,
            b"not an elf at all, just text that is long enough to pass the size check",
        )
        .unwrap();
        let err = read_static_binary(&junk).unwrap_err();
        assert!(err.to_string().contains("64-bit ELF"), "{err}");
    }

    #[test]
    fn missing_templates_are_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("redis")).unwrap();
        fs::write(dir.path().join("redis/Dockerfile"), "FROM scratch\n").unwrap();
        assert_eq!(available(dir.path()), vec!["redis".to_owned()]);
    }
}
