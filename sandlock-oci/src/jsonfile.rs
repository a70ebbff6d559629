//! The engine's JSON files (a bundle's config.json, exec's process.json),
//! read as a whole document and written back whole.
//!
//! The document is edited as JSON, not re-serialized from oci-spec's
//! types: a field this runtime's version of the spec does not know
//! (a newer runtime-spec, an engine's extension) reaches runc unchanged.
//! oci-spec reads the parts decisions are made from, and builds the parts
//! put in.
//!
//! Must never leave a half-written file: the new text goes to a temporary
//! file beside the old one (same mode), is synced and renamed over it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON file's document, and its typed reading.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<(Value, T)> {
    let text = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Value =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    let typed = serde_json::from_value(doc.clone())
        .with_context(|| format!("{} is not a runtime-spec document", path.display()))?;
    Ok((doc, typed))
}

/// Replaces `path` with `doc`, atomically.
pub fn write(path: &Path, doc: &Value) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.sandlock-{}", std::process::id()));
    let mode = fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o7777);
    let result = (|| -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec(doc)?)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_the_types_do_not_know_survive_a_round_trip() {
        let dir = std::env::temp_dir().join(format!("sandlock-oci-json-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        let text = r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["/bin/true"],"cwd":"/","x-future":{"k":[1,2]}},"x-engine":"kept"}"#;
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let (mut doc, spec): (Value, oci_spec::runtime::Spec) = read(&path).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_ref().unwrap()[0],
            "/bin/true"
        );
        doc["process"]["args"] = serde_json::json!(["/bin/false"]);
        write(&path, &doc).unwrap();
        let back: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            back["process"]["x-future"],
            serde_json::json!({"k": [1, 2]})
        );
        assert_eq!(back["x-engine"], "kept");
        assert_eq!(back["process"]["args"][0], "/bin/false");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
