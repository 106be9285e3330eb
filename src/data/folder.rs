//! Finding images: files given directly, or every image under a folder
//! (recursively), in a stable sorted order.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Extensions read as images (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"];

pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// An image found for processing, with the path it has relative to what the user named
/// (the file name for a file; the path under the folder for a folder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundImage {
    pub path: PathBuf,
    pub relative: PathBuf,
}

/// Every image under `dir`, sorted by path. An error if there is none.
pub fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort();
    if out.is_empty() {
        return Err(Error::image(dir, format!("no images found (looked for {})", IMAGE_EXTENSIONS.join(", "))));
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if kind.is_dir() || (kind.is_symlink() && path.is_dir()) {
            walk(&path, out)?;
        } else if is_image_path(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Expand files and folders named on the command line into images.
pub fn find_images(inputs: &[PathBuf]) -> Result<Vec<FoundImage>> {
    let mut found = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
        if meta.is_dir() {
            for path in images_in(input)? {
                let relative = path.strip_prefix(input).expect("walked under input").to_path_buf();
                found.push(FoundImage { path, relative });
            }
        } else {
            let name = input.file_name().map(PathBuf::from).unwrap_or_else(|| input.clone());
            found.push(FoundImage { path: input.clone(), relative: name });
        }
    }
    Ok(found)
}
