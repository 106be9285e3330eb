//! The errors a user can cause, each naming the file and saying what is wrong with it.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {reason}", path.display())]
    Image { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },
    /// A file of a training run (its log, options or state) that cannot be used.
    #[error("{}: {reason}", path.display())]
    RunFile { path: PathBuf, reason: String },
    /// A checkpoint describes a network that cannot be built.
    #[error("{}: {source}", path.display())]
    Network { path: PathBuf, source: crate::nets::ConfigError },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A download that failed or was refused: the URL and why.
    #[error("{url}: {reason}")]
    Download { url: String, reason: String },
    /// A downloaded archive that cannot be unpacked safely.
    #[error("{}: {reason}", path.display())]
    Archive { path: PathBuf, reason: String },
    /// A video that cannot be read or written (ffmpeg's complaint, or why it is refused).
    #[error("{}: {reason}", path.display())]
    Video { path: PathBuf, reason: String },
    #[error("{0}")]
    Usage(String),
    /// Training produced a loss that is not a number.
    #[error("training diverged at iteration {iteration}: {loss} is {value}; checkpoints/latest holds the last saved iteration (try a lower --lr)")]
    Diverged { iteration: u64, loss: String, value: f64 },
}

impl Error {
    pub fn image(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Image { path: path.to_path_buf(), reason: reason.to_string() }
    }

    pub fn checkpoint(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Checkpoint { path: path.to_path_buf(), reason: reason.to_string() }
    }

    pub fn run_file(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::RunFile { path: path.to_path_buf(), reason: reason.to_string() }
    }

    pub fn network(path: &Path, source: crate::nets::ConfigError) -> Self {
        Self::Network { path: path.to_path_buf(), source }
    }

    pub fn download(url: &str, reason: impl std::fmt::Display) -> Self {
        Self::Download { url: url.to_string(), reason: reason.to_string() }
    }

    pub fn archive(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Archive { path: path.to_path_buf(), reason: reason.to_string() }
    }

    pub fn video(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::Video { path: path.to_path_buf(), reason: reason.to_string() }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

impl From<crate::device::Unavailable> for Error {
    fn from(e: crate::device::Unavailable) -> Self {
        Self::Usage(e.0)
    }
}

impl From<crate::train::options::OptionError> for Error {
    fn from(e: crate::train::options::OptionError) -> Self {
        Self::Usage(e.0)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
