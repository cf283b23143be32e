//! The initramfs: a directory as a gzip-compressed cpio archive in the "newc" format the kernel unpacks, written
//! here (so device nodes such as /dev/console go in without root), all files owned by root.

use std::{io::Write, os::unix::fs::PermissionsExt, path::Path};

use crate::error::{ImageError, IoContext};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

pub struct Archive<W: Write> {
    out: W,
    next_inode: u32,
}

/// A character device to add: path, major, minor.
pub type Device<'a> = (&'a str, u32, u32);

impl<W: Write> Archive<W> {
    pub fn new(out: W) -> Archive<W> {
        Archive { out, next_inode: 1 }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> std::io::Result<()> {
        let name_size = name.len() + 1;
        let fields = [
            self.next_inode,
            mode,
            0,
            0,
            if mode & S_IFDIR != 0 { 2 } else { 1 },
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name_size as u32,
            0,
        ];
        self.next_inode += 1;
        let mut header = String::from("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(110 + name_size)?;
        self.out.write_all(data)?;
        self.pad(data.len())
    }

    fn pad(&mut self, written: usize) -> std::io::Result<()> {
        self.out.write_all(&[0u8; 3][..(4 - written % 4) % 4])
    }

    /// Adds everything under `dir` (named relative to it) and then `devices`.
    pub fn add_tree(&mut self, dir: &Path, devices: &[Device]) -> Result<(), ImageError> {
        self.add_dir(dir, dir)?;
        for (name, major, minor) in devices {
            self.entry(name, S_IFCHR | 0o600, (*major, *minor), &[]).context(|| "writing the initramfs".into())?;
        }
        Ok(())
    }

    fn add_dir(&mut self, base: &Path, dir: &Path) -> Result<(), ImageError> {
        let mut entries: Vec<_> =
            std::fs::read_dir(dir).context(|| format!("reading {}", dir.display()))?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = path.strip_prefix(base).unwrap_or(&path).to_string_lossy().to_string();
            let meta = std::fs::symlink_metadata(&path).context(|| format!("reading {}", path.display()))?;
            let permissions = meta.permissions().mode() & 0o7777;
            let written = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).context(|| format!("reading {}", path.display()))?;
                self.entry(&name, S_IFLNK | 0o777, (0, 0), target.as_os_str().as_encoded_bytes())
            } else if meta.is_dir() {
                self.entry(&name, S_IFDIR | permissions, (0, 0), &[])
            } else {
                let data = std::fs::read(&path).context(|| format!("reading {}", path.display()))?;
                self.entry(&name, S_IFREG | permissions, (0, 0), &data)
            };
            written.context(|| "writing the initramfs".into())?;
            if meta.is_dir() {
                self.add_dir(base, &path)?;
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<W, ImageError> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]).context(|| "writing the initramfs".into())?;
        Ok(self.out)
    }
}

/// `dir` and `devices` as a gzip-compressed newc archive.
pub fn initramfs(dir: &Path, devices: &[Device]) -> Result<Vec<u8>, ImageError> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut archive = Archive::new(encoder);
    archive.add_tree(dir, devices)?;
    archive.finish()?.finish().context(|| "compressing the initramfs".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_newc_headers_padded_to_four_bytes() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::create_dir(dir.path().join("etc")).expect("dir");
        std::fs::write(dir.path().join("etc/a"), b"hello").expect("file");
        let mut archive = Archive::new(Vec::new());
        archive.add_tree(dir.path(), &[("dev/console", 5, 1)]).expect("tree");
        let bytes = archive.finish().expect("finish");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("070701"));
        assert!(text.contains("etc/a\0") && text.contains("hello") && text.contains("dev/console\0"));
        assert!(text.contains("TRAILER!!!\0"));
        assert_eq!(bytes.len() % 4, 0);
        // The console: a character device 5:1 (rdevmajor and rdevminor fields).
        let console = text.find("dev/console").expect("console") - 110;
        assert_eq!(&text[console + 14..console + 22], &format!("{:08x}", S_IFCHR | 0o600));
        assert_eq!(&text[console + 78..console + 94], "0000000500000001");
    }
}
