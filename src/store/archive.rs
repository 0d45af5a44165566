//! Images inside zip archives, as LLaVA-CoT-100k and others ship them (`image.zip`): an input
//! whose `images_root` is a zip file resolves relative image paths as members of it, and a
//! value `zip://MEMBER::ARCHIVE` names a member of any archive (the fsspec form; a relative
//! ARCHIVE resolves against the image root, or the directory of a root that is an archive). Each archive's directory is read once; members are
//! read under a lock per archive.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use zip::ZipArchive;

/// Open archives by path.
#[derive(Debug, Default)]
pub struct Archives {
    open: Mutex<HashMap<PathBuf, Arc<Mutex<ZipArchive<File>>>>>,
}

/// Whether `path` is a zip archive to look images up in (by its name).
pub fn is_archive(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

/// A `zip://MEMBER::ARCHIVE` value split into its member and archive.
pub fn parse_zip_url(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix("zip://")?;
    let (member, archive) = rest.split_once("::")?;
    (!member.is_empty() && !archive.is_empty()).then_some((member, archive))
}

impl Archives {
    fn archive(&self, path: &Path) -> Result<Arc<Mutex<ZipArchive<File>>>, String> {
        let mut open = self.open.lock().map_err(|_| "the archive table is poisoned".to_string())?;
        if let Some(a) = open.get(path) {
            return Ok(a.clone());
        }
        let file = File::open(path).map_err(|e| format!("opening archive {}: {e}", path.display()))?;
        let zip = ZipArchive::new(file).map_err(|e| format!("{}: not a readable zip archive: {e}", path.display()))?;
        let a = Arc::new(Mutex::new(zip));
        open.insert(path.to_path_buf(), a.clone());
        Ok(a)
    }

    /// The bytes of `member` of `archive`: None when the archive has no such member; the
    /// error says why the archive or the member cannot be read.
    pub fn read(&self, archive: &Path, member: &str) -> Result<Option<Vec<u8>>, String> {
        let a = self.archive(archive)?;
        let mut zip = a.lock().map_err(|_| "an archive lock is poisoned".to_string())?;
        let member = member.trim_start_matches("./");
        let mut f = match zip.by_name(member) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(format!("{}: member `{member}`: {e}", archive.display())),
        };
        let mut out = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut out).map_err(|e| format!("{}: member `{member}`: {e}", archive.display()))?;
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_urls_name_member_and_archive() {
        assert_eq!(parse_zip_url("zip://images/a.png::data/image.zip"), Some(("images/a.png", "data/image.zip")));
        assert_eq!(parse_zip_url("zip://a.png"), None);
        assert_eq!(parse_zip_url("images/a.png"), None);
        assert_eq!(parse_zip_url("zip://::x.zip"), None);
    }
}
