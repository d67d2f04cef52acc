//! The state file (`--state-file`): what a restart needs to resume instead of re-reading the
//! whole lookback window.
//!
//! **Format** (version [`FORMAT_VERSION`]): gzip of two lines of JSON, a [`Header`] and a
//! [`Body`]. The header is read first and alone, so a file of another format version, another
//! organisation or other settings is refused before its body is decoded. Plain structs of their
//! own ([`PersistedRecord`], [`PersistedSchedule`], …): the in-memory types convert to and from
//! them in one place each ([`Store::export`](crate::state::Store::export) and
//! [`Store::restore`](crate::state::Store::restore); the poller's `state_file_keeper` for the
//! schedule), so they may change without changing the file.
//!
//! **Writing** is atomic ([`write_atomic`]): a temporary file in the same directory, flushed to
//! disk, renamed over the old one, and the directory flushed; a failed write leaves the old file.
//!
//! **Reading** never applies a file in part: it is decoded and checked whole ([`load`],
//! [`Header::check`]), and anything wrong with it (unreadable, corrupt, another format version,
//! organisation or shard, settings that change what is tracked, older than the lookback window)
//! is a [`Rejected`] reason, logged as a warning, after which the exporter backfills as without a
//! file.

use std::fs::{self, File};
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::filter::{DeploymentFilter, ProjectFilter};
use crate::views::Views;

/// Version of the file's layout; a file of another version is ignored (with a warning).
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Largest decompressed file read (a bound on a corrupt or hostile file, far above the ~100 MB
/// that 200,000 deployments take before compression).
const MAX_DECOMPRESSED: u64 = 2 << 30;
/// Longest header line read.
const MAX_HEADER: u64 = 64 * 1024;

/// Where and how often the state is written (`--state-file`, `--state-file-interval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFileConfig {
    /// The file.
    pub path: PathBuf,
    /// Least time between two writes after polls; zero = after every poll that read something.
    pub interval: Duration,
}

/// The first line: what the file is and which settings wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// The exporter version that wrote it (informational: any version of the same format reads it).
    pub exporter_version: String,
    /// env0 organisation it describes.
    pub organization_id: String,
    /// When it was written, by the exporter's clock, in milliseconds since the epoch.
    pub written_at_ms: i64,
    /// The shard it belongs to, when the organisation is split between exporters.
    pub shard: Option<String>,
    /// The settings that decide what is tracked.
    pub settings: Settings,
}

/// The settings that change what is tracked (a file written under others is ignored): the
/// poller's filters as they are, its lookback, and the two views that shape the records. The
/// filters are flattened under the flags' names, so the header reads as it always has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Settings {
    /// `--lookback`, in seconds.
    pub lookback_seconds: u64,
    /// `--deployment-types`, `--statuses`, `--user-ids`.
    #[serde(flatten)]
    pub filter: DeploymentFilter,
    /// `--projects`, `--exclude-projects`.
    #[serde(flatten)]
    pub projects: ProjectFilter,
    /// `--project-label` (it is part of the records' labels).
    pub project_label: bool,
    /// `--max-series-per-metric` (it bounds the projects admitted to the `project` label).
    pub max_series_per_metric: usize,
}

impl Settings {
    /// The settings of a poller that keeps `lookback`, watches what `filter` and `projects` let
    /// through, and shows `views`.
    #[must_use]
    pub(crate) fn new(
        lookback: Duration,
        filter: &DeploymentFilter,
        projects: &ProjectFilter,
        views: Views,
    ) -> Self {
        Self {
            lookback_seconds: lookback.as_secs(),
            filter: filter.clone(),
            projects: projects.clone(),
            project_label: views.project_label,
            max_series_per_metric: views.max_series_per_metric,
        }
    }

    /// The flag of the first setting that differs from `other`, if any.
    #[must_use]
    pub(crate) fn first_difference(&self, other: &Self) -> Option<&'static str> {
        let (f, o) = (&self.filter, &other.filter);
        [
            (
                self.lookback_seconds != other.lookback_seconds,
                "--lookback",
            ),
            (
                f.deployment_types != o.deployment_types,
                "--deployment-types",
            ),
            (f.statuses != o.statuses, "--statuses"),
            (f.user_ids != o.user_ids, "--user-ids"),
            (
                self.projects.include != other.projects.include,
                "--projects",
            ),
            (
                self.projects.exclude != other.projects.exclude,
                "--exclude-projects",
            ),
            (self.project_label != other.project_label, "--project-label"),
            (
                self.max_series_per_metric != other.max_series_per_metric,
                "--max-series-per-metric",
            ),
        ]
        .into_iter()
        .find_map(|(differs, flag)| differs.then_some(flag))
    }
}

/// What a file must match to be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    /// The settings of this process.
    pub settings: Settings,
    /// Its shard.
    pub shard: Option<String>,
    /// Its lookback: an older file is of no use.
    pub lookback: Duration,
}

/// Why a state file is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// It could not be read or decoded.
    #[error("unreadable or corrupt: {0}")]
    Corrupt(String),
    /// Another format version wrote it.
    #[error("format version {found}, this exporter reads version {FORMAT_VERSION}")]
    Version {
        /// The file's version.
        found: u32,
    },
    /// Another organisation's.
    #[error("written for organisation {found}, this exporter watches {expected}")]
    Organization {
        /// The file's organisation.
        found: String,
        /// This exporter's.
        expected: String,
    },
    /// Another shard's.
    #[error("written for shard {found:?}, this exporter is shard {expected:?}")]
    Shard {
        /// The file's shard.
        found: Option<String>,
        /// This exporter's.
        expected: Option<String>,
    },
    /// Written under a setting that changes what is tracked.
    #[error("written with a different {0}")]
    Settings(&'static str),
    /// Older than the lookback window.
    #[error("written {age} ago, longer ago than the lookback window")]
    TooOld {
        /// Its age, for the message.
        age: String,
    },
}

impl Header {
    /// Whether a file with this header may be used at `now` (the exporter's clock, as when it
    /// was written) by an exporter watching `organization_id`.
    ///
    /// # Errors
    /// The reason it may not.
    pub(crate) fn check(
        &self,
        expected: &Expected,
        organization_id: &str,
        now: Timestamp,
    ) -> Result<(), Rejected> {
        if self.format != FORMAT_VERSION {
            return Err(Rejected::Version { found: self.format });
        }
        if self.organization_id != organization_id {
            return Err(Rejected::Organization {
                found: self.organization_id.clone(),
                expected: organization_id.to_owned(),
            });
        }
        if self.shard != expected.shard {
            return Err(Rejected::Shard {
                found: self.shard.clone(),
                expected: expected.shard.clone(),
            });
        }
        if let Some(flag) = self.settings.first_difference(&expected.settings) {
            return Err(Rejected::Settings(flag));
        }
        let age = self.age(now);
        if age > expected.lookback {
            return Err(Rejected::TooOld {
                age: humantime::format_duration(age).to_string(),
            });
        }
        Ok(())
    }

    /// How long ago it was written (zero if the clock is now earlier).
    #[must_use]
    pub(crate) fn age(&self, now: Timestamp) -> Duration {
        Timestamp::from_millisecond(self.written_at_ms)
            .map_or(Duration::MAX, |at| clock::elapsed(at, now))
    }
}

/// The second line: environments and deployments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Body {
    /// The poller's schedule, one entry per environment.
    pub schedule: Vec<PersistedSchedule>,
    /// What the state keeps.
    pub store: PersistedStore,
    /// What the webhook deliveries were seen to cover; empty in files that predate it.
    #[serde(default)]
    pub webhooks: PersistedCoverage,
}

/// What the webhook deliveries were seen to cover (the poller's `Coverage`), in milliseconds of
/// the exporter's clock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PersistedCoverage {
    /// Per project id (`""`: environments without one), when a delivery of it last arrived.
    pub projects: Vec<(String, i64)>,
    /// Per deployment type, when a success and another end were last delivered.
    pub type_ends: Vec<PersistedEnds>,
}

/// When ends of runs of one deployment type were last delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PersistedEnds {
    /// The `deployment_type` label value.
    pub deployment_type: String,
    /// The last success.
    pub succeeded: Option<i64>,
    /// The last other end.
    pub otherwise: Option<i64>,
}

/// An environment's latest run: id and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PersistedLatest {
    /// Deployment log id.
    pub id: String,
    /// Its status, when known.
    pub status: Option<String>,
}

/// What the poller remembers of one environment (the poller's `EnvSchedule`). Times in milliseconds of
/// env0's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PersistedSchedule {
    /// Environment id.
    pub id: String,
    /// Latest run as last listed.
    pub listed_latest: Option<PersistedLatest>,
    /// Latest run as listed when last read.
    pub read_latest: Option<PersistedLatest>,
    /// Whether its lookback window has been read.
    pub backfilled: bool,
    /// `toDate` of its last successful read.
    pub last_read: Option<i64>,
    /// When its next full re-read is due.
    pub next_full_sync: Option<i64>,
    /// Whether it is archived.
    pub archived: bool,
    /// Its `updatedAt`.
    pub updated_at: Option<i64>,
    /// Whether its last read was refused (403).
    pub unreadable: bool,
    /// When (the exporter's clock) its last full read was planned, for the oldest-full-read
    /// gauge; absent in files that predate it.
    #[serde(default)]
    pub last_full_read: Option<i64>,
}

/// The store's part: deployments, baselines, deploy ends, admitted projects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedStore {
    /// Deployments in the window, and unfinished ones.
    pub deployments: Vec<PersistedRecord>,
    /// Environments whose first read is done.
    pub baselined: Vec<String>,
    /// Recent deploy ends per environment, for recovery durations.
    pub deploy_ends: Vec<PersistedDeployEnd>,
    /// Projects admitted to a `project` label value of their own.
    pub admitted_projects: Vec<String>,
}

/// One deployment as the store keeps it. Times in milliseconds of env0's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedRecord {
    /// Deployment log id.
    pub id: String,
    /// Its environment.
    pub environment: String,
    /// `deployment_type` label value.
    pub deployment_type: String,
    /// `status` label value.
    pub status: String,
    /// `iac_tool` label value.
    pub iac_tool: String,
    /// `trigger` label value.
    pub trigger: String,
    /// `project` label value (with `--project-label`).
    pub project: Option<String>,
    /// Created.
    pub created_at: i64,
    /// Queued.
    pub queued_at: Option<i64>,
    /// Started.
    pub started_at: Option<i64>,
    /// Finished (and counted, or history).
    pub finish_time: Option<i64>,
    /// First seen waiting for approval, while it still is.
    pub waiting_since: Option<i64>,
}

/// One deploy end of an environment's recent history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedDeployEnd {
    /// Its environment.
    pub environment: String,
    /// Deployment log id.
    pub id: String,
    /// When it ended (env0's clock, milliseconds).
    pub at: i64,
    /// Success (else failure).
    pub success: bool,
}

/// A whole state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateFile {
    /// First line.
    pub header: Header,
    /// Second line.
    pub body: Body,
}

/// Milliseconds since the epoch.
#[must_use]
pub(crate) fn millis(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

/// A timestamp from milliseconds since the epoch.
///
/// # Errors
/// When out of range (a corrupt file).
pub(crate) fn timestamp(ms: i64) -> Result<Timestamp, Rejected> {
    Timestamp::from_millisecond(ms)
        .map_err(|e| Rejected::Corrupt(format!("timestamp {ms} out of range: {e}")))
}

/// [`timestamp`] of an optional value.
///
/// # Errors
/// When out of range.
pub(crate) fn timestamp_opt(ms: Option<i64>) -> Result<Option<Timestamp>, Rejected> {
    ms.map(timestamp).transpose()
}

/// Writes `file` to `path` atomically (see [`write_atomic`]); returns the bytes written.
///
/// # Errors
/// Any I/O error; the old file is then left as it was.
pub(crate) fn save(path: &Path, file: &StateFile) -> io::Result<u64> {
    let mut size = 0;
    write_atomic(path, |out| {
        let mut counting = CountingWriter {
            inner: out,
            count: 0,
        };
        // serde_json writes many small pieces: buffered, the compressor sees large ones.
        let mut json = BufWriter::with_capacity(
            256 * 1024,
            GzEncoder::new(&mut counting, Compression::fast()),
        );
        serde_json::to_writer(&mut json, &file.header)?;
        json.write_all(b"\n")?;
        serde_json::to_writer(&mut json, &file.body)?;
        json.write_all(b"\n")?;
        json.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .finish()?;
        size = counting.count;
        Ok(())
    })?;
    Ok(size)
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The temporary file a write of `path` goes through: in the same directory (a rename is atomic
/// only within one file system), named after it and this process.
fn temporary(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the state file path has no file name",
        )
    })?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp-{}", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// Writes a file atomically: `content` into a temporary file in the same directory, flushed
/// to disk, renamed over `path`, then the directory flushed so the rename survives a crash.
/// On any error the temporary file is removed and `path` is left as it was.
///
/// # Errors
/// Any I/O error, or one `content` returns.
pub(crate) fn write_atomic(
    path: &Path,
    content: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temporary(path)?;
    let result = (|| {
        let mut file = File::create(&tmp)?;
        {
            let mut out = BufWriter::with_capacity(256 * 1024, &mut file);
            content(&mut out)?;
            out.flush()?;
        }
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_directory(path)
}

#[cfg(unix)]
fn sync_directory(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_directory(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// The one field of the header every format version keeps.
#[derive(Deserialize)]
struct Version {
    format: u32,
}

/// Reads the state file at `path`: `Ok(None)` when there is none. The header is checked for the
/// format version before the body is decoded.
///
/// # Errors
/// Why the file cannot be used.
pub(crate) fn load(path: &Path) -> Result<Option<StateFile>, Rejected> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Rejected::Corrupt(e.to_string())),
    };
    // Decoded as it is decompressed: the text of a large file is never in memory whole.
    let mut text = io::BufReader::with_capacity(
        256 * 1024,
        GzDecoder::new(io::BufReader::new(file)).take(MAX_DECOMPRESSED),
    );
    let corrupt = |e: serde_json::Error| Rejected::Corrupt(e.to_string());
    let mut header = Vec::new();
    (&mut text)
        .take(MAX_HEADER)
        .read_until(b'\n', &mut header)
        .map_err(|e| Rejected::Corrupt(format!("not gzip: {e}")))?;
    if header.last() != Some(&b'\n') {
        return Err(Rejected::Corrupt("no header line".into()));
    }
    let version: Version = serde_json::from_slice(&header).map_err(corrupt)?;
    if version.format != FORMAT_VERSION {
        return Err(Rejected::Version {
            found: version.format,
        });
    }
    let header: Header = serde_json::from_slice(&header).map_err(corrupt)?;
    let body: Body = serde_json::from_reader(text).map_err(corrupt)?;
    Ok(Some(StateFile { header, body }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn header() -> Header {
        Header {
            format: FORMAT_VERSION,
            exporter_version: "0.1.0".into(),
            organization_id: "org-1".into(),
            written_at_ms: millis("2026-07-01T12:00:00Z".parse().unwrap()),
            shard: None,
            settings: Settings {
                lookback_seconds: 86_400,
                ..Settings::default()
            },
        }
    }

    pub(super) fn file(deployments: usize) -> StateFile {
        StateFile {
            header: header(),
            body: Body {
                schedule: vec![PersistedSchedule {
                    id: "e1".into(),
                    listed_latest: Some(PersistedLatest {
                        id: "d1".into(),
                        status: Some("SUCCESS".into()),
                    }),
                    read_latest: None,
                    backfilled: true,
                    last_read: Some(1),
                    next_full_sync: None,
                    archived: false,
                    updated_at: None,
                    unreadable: false,
                    last_full_read: Some(1),
                }],
                store: PersistedStore {
                    deployments: (0..deployments)
                        .map(|i| PersistedRecord {
                            id: format!("d{i}"),
                            environment: "e1".into(),
                            deployment_type: "deploy".into(),
                            status: "SUCCESS".into(),
                            iac_tool: "terraform".into(),
                            trigger: "user".into(),
                            project: None,
                            created_at: 1_000,
                            queued_at: Some(1_001),
                            started_at: Some(1_002),
                            finish_time: Some(1_003),
                            waiting_since: None,
                        })
                        .collect(),
                    baselined: vec!["e1".into()],
                    deploy_ends: Vec::new(),
                    admitted_projects: Vec::new(),
                },
                webhooks: PersistedCoverage {
                    projects: vec![("p1".into(), 1)],
                    type_ends: vec![PersistedEnds {
                        deployment_type: "deploy".into(),
                        succeeded: Some(1),
                        otherwise: None,
                    }],
                },
            },
        }
    }

    #[test]
    fn a_saved_file_loads_back_equal_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json.gz");
        assert_eq!(load(&path).unwrap(), None);
        let written = file(3);
        let size = save(&path, &written).unwrap();
        assert_eq!(size, fs::metadata(&path).unwrap().len());
        assert_eq!(load(&path).unwrap(), Some(written));
        // Only the file itself is left in the directory: the temporary one was renamed.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json.gz"]);
    }

    #[test]
    fn a_body_written_before_the_webhook_coverage_was_kept_reads_with_none() {
        let mut body = serde_json::to_value(file(1).body).unwrap();
        body.as_object_mut().unwrap().remove("webhooks");
        let read: Body = serde_json::from_value(body).unwrap();
        assert_eq!(read.webhooks, PersistedCoverage::default());
        assert_eq!(read.store, file(1).body.store);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, |w| w.write_all(b"old")).unwrap();
        let err = write_atomic(&path, |w| {
            w.write_all(b"half of the new")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // A directory that cannot take the temporary file: the old file stays too.
        let missing = dir.path().join("no-such-dir").join("state");
        assert!(write_atomic(&missing, |w| w.write_all(b"x")).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn corrupt_and_other_version_files_are_refused_with_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        fs::write(&path, b"not gzip at all").unwrap();
        assert!(matches!(load(&path), Err(Rejected::Corrupt(_))));
        // Cut short: gzip ends early.
        save(&path, &file(100)).unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(load(&path), Err(Rejected::Corrupt(_))));
        let mut other = file(1);
        other.header.format = FORMAT_VERSION + 1;
        save(&path, &other).unwrap();
        assert_eq!(
            load(&path),
            Err(Rejected::Version {
                found: FORMAT_VERSION + 1
            })
        );
    }

    /// A header as the exporter wrote it before the settings held the filters themselves.
    const PREVIOUS_HEADER: &str = r#"{"format":1,"exporter_version":"0.1.0","organization_id":"org-1","written_at_ms":1782907200000,"shard":null,"settings":{"lookback_seconds":86400,"deployment_types":["deploy"],"statuses":["FAILURE","SUCCESS"],"user_ids":[],"projects":["payments-*"],"exclude_projects":["sandbox"],"project_label":true,"max_series_per_metric":5000}}"#;

    #[test]
    fn the_settings_read_and_write_the_header_as_the_previous_version_did() {
        let settings = Settings::new(
            Duration::from_secs(86_400),
            &DeploymentFilter {
                deployment_types: vec!["deploy".into()],
                statuses: vec!["FAILURE".into(), "SUCCESS".into()],
                user_ids: vec![],
            },
            &ProjectFilter {
                include: vec!["payments-*".into()],
                exclude: vec!["sandbox".into()],
            },
            Views {
                project_label: true,
                environment_metrics: true,
                max_series_per_metric: 5000,
            },
        );
        let read: Header = serde_json::from_str(PREVIOUS_HEADER).unwrap();
        assert_eq!(read.settings, settings);
        let previous: serde_json::Value = serde_json::from_str(PREVIOUS_HEADER).unwrap();
        assert_eq!(
            serde_json::to_value(&settings).unwrap(),
            previous["settings"],
            "the previous version reads what this one writes"
        );
        let other = Settings {
            projects: ProjectFilter {
                exclude: vec![],
                ..settings.projects.clone()
            },
            ..settings.clone()
        };
        assert_eq!(
            settings.first_difference(&other),
            Some("--exclude-projects")
        );
    }

    #[test]
    fn a_header_is_checked_for_organisation_shard_settings_and_age() {
        let h = header();
        let expected = Expected {
            settings: h.settings.clone(),
            shard: None,
            lookback: Duration::from_secs(86_400),
        };
        let now: Timestamp = "2026-07-01T13:00:00Z".parse().unwrap();
        assert_eq!(h.check(&expected, "org-1", now), Ok(()));
        assert!(matches!(
            h.check(&expected, "org-2", now),
            Err(Rejected::Organization { .. })
        ));
        let sharded = Expected {
            shard: Some("1/2".into()),
            ..expected.clone()
        };
        assert!(matches!(
            h.check(&sharded, "org-1", now),
            Err(Rejected::Shard { .. })
        ));
        let mut settings = expected.clone();
        settings.settings.filter.statuses = vec!["FAILURE".into()];
        assert_eq!(
            h.check(&settings, "org-1", now),
            Err(Rejected::Settings("--statuses"))
        );
        let later: Timestamp = "2026-07-02T12:00:01Z".parse().unwrap();
        assert!(matches!(
            h.check(&expected, "org-1", later),
            Err(Rejected::TooOld { .. })
        ));
    }
}

/// The cost of a file of `N` (default 200,000) deployments with varied ids, environments and
/// times: `N=200000 cargo test --release --lib state_file_format::timing -- --ignored --nocapture`.
#[cfg(test)]
mod timing {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    #[ignore = "a measurement, not a check"]
    fn write_and_read_times() {
        let n: usize = std::env::var("N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut uuid = || {
            let (a, b) = (rng.u128(..), rng.u32(..));
            format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                b,
                a & 0xffff,
                (a >> 16) & 0xfff,
                (a >> 28) & 0xfff,
                a >> 64 & 0xffff_ffff_ffff
            )
        };
        let environments: Vec<String> = (0..n / 20).map(|_| uuid()).collect();
        let mut f = super::tests::file(0);
        let start = 1_782_907_200_000_i64;
        f.body.store.deployments = (0..n)
            .map(|i| {
                let created = start + i64::try_from(i).unwrap() * 431;
                PersistedRecord {
                    id: uuid(),
                    environment: environments[i % environments.len()].clone(),
                    deployment_type: ["deploy", "prPlan", "driftDetection", "destroy"][i % 4]
                        .into(),
                    status: ["SUCCESS", "FAILURE", "IN_PROGRESS"][i % 3].into(),
                    iac_tool: ["terraform", "opentofu"][i % 2].into(),
                    trigger: ["user", "schedule", "git"][i % 3].into(),
                    project: None,
                    created_at: created,
                    queued_at: Some(created + 1_000),
                    started_at: Some(created + 5_123),
                    finish_time: (i % 3 != 2).then_some(created + 300_456),
                    waiting_since: None,
                }
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json.gz");
        let t = std::time::Instant::now();
        let bytes = save(&path, &f).unwrap();
        eprintln!(
            "{n} deployments: written in {:?}, {bytes} bytes",
            t.elapsed()
        );
        let t = std::time::Instant::now();
        let back = load(&path).unwrap().unwrap();
        eprintln!("read back in {:?}", t.elapsed());
        assert_eq!(back.body.store.deployments.len(), n);
    }
}
