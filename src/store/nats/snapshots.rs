//! Snapshots in a JetStream object store, the live pointer in a key-value bucket; one code
//! path for both kinds ([`SharedKind`]): recommendation snapshots (objects `v0000000042/…`,
//! pointer key `recommendation`) and search snapshots (objects `search-v0000000042/…`,
//! pointer key `search`), in the same buckets.
//!
//! A snapshot is written to the local cache directory exactly as on disk (so its manifest
//! records every file's SHA-256), then each file is uploaded as object `v0000000042/<file>`,
//! the manifest last: a version whose manifest object exists is complete. Then the pointer
//! is set to the version. Readers download every object of a version
//! into the cache and read it back with the same verification as a local snapshot; a cached
//! copy that fails verification is downloaded again. The pointer's history (as many revisions
//! as `storage.keep_snapshots`, at most 64) records what was live before: a rollback sets it
//! to an older version still kept.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use async_nats::jetstream::object_store::{self, ObjectStore};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::{Nats, NatsError};
use crate::store::Snapshot;
use crate::store::backend::{SnapshotStore, VersionStore, is_complete};
use crate::store::checkpoint::Checkpoint;
use crate::store::search_snapshot::SearchSnapshot;
use crate::store::snapshot::SnapshotError;
use crate::store::snapshot_dir::{Checkpointed, SnapshotDir, Versioned};

/// The manifest, uploaded last.
const MANIFEST: &str = "manifest.json";

/// A kind of snapshot shared through NATS: where its objects and its pointer live.
pub trait SharedKind: Versioned + Send + 'static {
    /// Its live pointer's key in the pointer bucket.
    const POINTER_KEY: &'static str;
    /// What its object names start with (before `v0000000042/`).
    const OBJECT_PREFIX: &'static str;
}

impl SharedKind for Snapshot {
    const POINTER_KEY: &'static str = "recommendation";
    // Unprefixed: the names buckets written before search was shared already hold.
    const OBJECT_PREFIX: &'static str = "";
}

impl SharedKind for SearchSnapshot {
    const POINTER_KEY: &'static str = "search";
    const OBJECT_PREFIX: &'static str = "search-";
}

/// The object-name prefix of `version` of kind `S`.
fn prefix<S: SharedKind>(version: u64) -> String {
    format!("{}v{version:010}/", S::OBJECT_PREFIX)
}

/// The version and file of an object name of kind `S` (`None` for other kinds' objects).
fn parse_name<S: SharedKind>(name: &str) -> Option<(u64, &str)> {
    let (dir, file) = name.strip_prefix(S::OBJECT_PREFIX)?.split_once('/')?;
    Some((dir.strip_prefix('v')?.parse().ok()?, file))
}

fn remote(e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Remote(e.to_string())
}

/// Tries a write a few times: a cluster that just lost the stream's leader answers "no
/// stream" (or nothing) until it has elected another, which took up to ~20 s on a 3-node
/// nats-server 2.9 cluster in the tests.
fn retrying(mut write: impl FnMut() -> Result<(), SnapshotError>) -> Result<(), SnapshotError> {
    let mut tries = 0;
    loop {
        match write() {
            Ok(()) => return Ok(()),
            Err(e) if tries >= WRITE_RETRIES => return Err(e),
            Err(e) => {
                tries += 1;
                tracing::warn!(error = %e, tries, "snapshot store write failed; retrying");
                std::thread::sleep(Duration::from_millis(500) * tries);
            }
        }
    }
}

/// Retries of a failed write (after 0.5, 1, … 4 s: 18 s in all).
const WRITE_RETRIES: u32 = 8;

/// The pointer as the watcher last saw it (0 = none yet), and who waits for it to change.
#[derive(Default)]
struct Watched {
    value: Mutex<u64>,
    changed: Condvar,
}

/// Snapshots of kind `S` shared through NATS, cached in a local directory.
pub struct NatsSnapshots<S = Snapshot> {
    nats: Arc<Nats>,
    objects: ObjectStore,
    pointer: kv::Store,
    cache: SnapshotDir<S>,
    /// Complete versions in the object store, as far as this process knows (listed at open
    /// and at start-up reads, added to by writes and by every pointer value the watcher
    /// sees), so a standby that takes over numbers its snapshots after the active one's.
    known: Arc<Mutex<BTreeSet<u64>>>,
    watched: Arc<Watched>,
}

impl<S> std::fmt::Debug for NatsSnapshots<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSnapshots")
            .field("cache", &self.cache.root())
            .finish_non_exhaustive()
    }
}

impl<S: SharedKind> NatsSnapshots<S> {
    /// Opens (creating if missing) the object store and the pointer bucket, caching downloads
    /// under `cache_dir`, and starts watching the pointer.
    pub fn open(nats: Arc<Nats>, cache_dir: &Path, keep: usize) -> Result<Self, SnapshotError> {
        let cache = SnapshotDir::open(cache_dir)?;
        let c = nats.cfg.clone();
        let js = nats.js.clone();
        let (objects, pointer) = nats
            .run(async move {
                let objects = match js.get_object_store(&c.snapshot_bucket).await {
                    Ok(o) => o,
                    Err(_) => js
                        .create_object_store(object_store::Config {
                            bucket: c.snapshot_bucket.clone(),
                            description: Some("irgan snapshots".into()),
                            storage: Nats::storage(),
                            num_replicas: c.replicas,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| NatsError::request("creating the snapshot bucket", e))?,
                };
                let pointer = Nats::ensure_kv(
                    &js,
                    &c.pointer_bucket,
                    "irgan live snapshot pointer",
                    keep.clamp(1, 64) as i64,
                    Duration::ZERO,
                    c.replicas,
                )
                .await?;
                Ok::<_, NatsError>((objects, pointer))
            })
            .map_err(remote)?
            .map_err(remote)?;
        let store = Self {
            nats,
            objects,
            pointer,
            cache,
            known: Arc::default(),
            watched: Arc::default(),
        };
        store.refresh_known()?;
        store.watch();
        Ok(store)
    }

    fn known_set(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds the complete versions in the bucket to the known ones.
    fn refresh_known(&self) -> Result<(), SnapshotError> {
        let listed = self.list()?;
        self.known_set().extend(
            listed
                .iter()
                .filter(|(_, f)| f == MANIFEST)
                .map(|(v, _)| *v),
        );
        Ok(())
    }

    /// Every (version, file) object in the bucket.
    fn list(&self) -> Result<Vec<(u64, String)>, SnapshotError> {
        let objects = self.objects.clone();
        self.nats
            .run(async move {
                let mut list = objects.list().await.map_err(remote)?;
                let mut out = Vec::new();
                while let Some(info) = list.next().await {
                    let info = info.map_err(remote)?;
                    if !info.deleted
                        && let Some((v, f)) = parse_name::<S>(&info.name)
                    {
                        out.push((v, f.to_owned()));
                    }
                }
                Ok(out)
            })
            .map_err(remote)?
    }

    /// Follows the pointer on the client runtime (re-subscribing after a failure).
    fn watch(&self) {
        let (pointer, watched, known) = (
            self.pointer.clone(),
            self.watched.clone(),
            self.known.clone(),
        );
        self.nats.background(async move {
            loop {
                if let Ok(mut w) = pointer.watch_with_history(S::POINTER_KEY).await {
                    while let Some(Ok(entry)) = w.next().await {
                        let Some(v) = std::str::from_utf8(&entry.value)
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                        else {
                            continue;
                        };
                        known
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(v);
                        *watched.value.lock().unwrap_or_else(PoisonError::into_inner) = v;
                        watched.changed.notify_all();
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// Uploads every file of the cached directory of `version`, the manifest last.
    fn upload(&self, version: u64) -> Result<(), SnapshotError> {
        let dir = self.cache.path_of(version);
        let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
            .map_err(|source| SnapshotError::Io {
                path: dir.clone(),
                source,
            })?
            .flatten()
            .filter(|e| e.path().is_file())
            .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.path())))
            .filter(|(name, _)| !name.starts_with('.'))
            .collect();
        files.sort_by_key(|(name, _)| (name == MANIFEST, name.clone()));
        for (name, path) in files {
            let bytes = std::fs::read(&path).map_err(|source| SnapshotError::Io {
                path: path.clone(),
                source,
            })?;
            let object = format!("{}{name}", prefix::<S>(version));
            retrying(|| {
                let (objects, object, bytes) =
                    (self.objects.clone(), object.clone(), bytes.clone());
                self.nats
                    .run(async move { objects.put(object.as_str(), &mut bytes.as_slice()).await })
                    .map_err(remote)?
                    .map_err(|e| remote(format!("uploading {name} of version {version}: {e}")))
                    .map(drop)
            })?;
        }
        Ok(())
    }

    /// One object's bytes.
    fn get(&self, object: String) -> Result<Vec<u8>, SnapshotError> {
        let objects = self.objects.clone();
        self.nats
            .run(async move {
                let mut o = objects.get(object.as_str()).await.map_err(remote)?;
                let mut buf = Vec::new();
                o.read_to_end(&mut buf).await.map_err(remote)?;
                Ok::<_, SnapshotError>(buf)
            })
            .map_err(remote)?
    }

    /// Downloads `version` into the cache (replacing a partial or corrupt copy): the manifest
    /// first, then every file it lists. A version pruned meanwhile fails (the caller moves on
    /// to the pointer's next value).
    fn download(&self, version: u64) -> Result<(), SnapshotError> {
        let manifest = self
            .get(format!("{}{MANIFEST}", prefix::<S>(version)))
            .map_err(|e| remote(format!("version {version}: {e}")))?;
        let listed: serde_json::Value = serde_json::from_slice(&manifest)
            .map_err(|e| SnapshotError::Format(format!("{MANIFEST}: {e}")))?;
        let files: Vec<String> = listed["files"]
            .as_object()
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default();
        let dir = self.cache.path_of(version);
        let tmp = dir.with_extension("download");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SnapshotError::Io { path, source }
        };
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        for file in files {
            // Names come from the manifest: keep them inside the directory.
            if file.contains('/') || file.contains("..") || file == MANIFEST {
                return Err(SnapshotError::Format(format!("bad file name {file:?}")));
            }
            let bytes = self.get(format!("{}{file}", prefix::<S>(version)))?;
            let path = tmp.join(&file);
            std::fs::write(&path, bytes).map_err(io(&path))?;
        }
        let path = tmp.join(MANIFEST);
        std::fs::write(&path, manifest).map_err(io(&path))?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(io(&dir))?;
        Ok(())
    }

    /// Removes the objects of all but the newest `keep` versions, never `written` or the
    /// live one. Best effort: a leftover is removed next time.
    fn prune(&self, written: u64, keep: usize) {
        let Ok(listed) = self.list() else { return };
        let versions: BTreeSet<u64> = listed.iter().map(|(v, _)| *v).collect();
        let live = self.live().ok().flatten();
        let excess = versions.len().saturating_sub(keep.max(1));
        for &v in versions.iter().take(excess) {
            if v == written || Some(v) == live {
                continue;
            }
            for (_, f) in listed.iter().filter(|(lv, _)| *lv == v) {
                let objects = self.objects.clone();
                let object = format!("{}{f}", prefix::<S>(v));
                let _ = self
                    .nats
                    .run(async move { objects.delete(object.as_str()).await });
            }
            self.known_set().remove(&v);
        }
    }
    /// Reads `version` with `read` from the cache, downloading it first when the cached copy
    /// is missing or fails verification.
    fn fetch<T>(
        &self,
        version: u64,
        read: impl Fn(&Path) -> Result<T, SnapshotError>,
    ) -> Result<T, SnapshotError> {
        let dir = self.cache.path_of(version);
        if is_complete(&dir)
            && let Ok(s) = read(&dir)
        {
            return Ok(s);
        }
        self.download(version)?;
        let s = read(&dir)?;
        self.known_set().insert(version);
        Ok(s)
    }

    /// The first of the live version and then the newest that `read` accepts; the ones
    /// skipped with why.
    fn newest_valid_by<T>(
        &self,
        read: impl Fn(&Path) -> Result<T, SnapshotError>,
    ) -> (Option<T>, Vec<(u64, SnapshotError)>) {
        let mut skipped = Vec::new();
        // Start-up (a standby may have waited long for its lease): list what is there now.
        if let Err(e) = self.refresh_known() {
            skipped.push((0, e));
        }
        let live = match self.live() {
            Ok(v) => v,
            Err(e) => {
                skipped.push((0, e));
                None
            }
        };
        let mut order: Vec<u64> = live.into_iter().collect();
        order.extend(
            self.known_set()
                .iter()
                .rev()
                .copied()
                .filter(|v| Some(*v) != live),
        );
        for v in order {
            match self.fetch(v, &read) {
                Ok(s) => return (Some(s), skipped),
                Err(e) => skipped.push((v, e)),
            }
        }
        (None, skipped)
    }

    /// Shares `version`, already written to the cache: uploads it, makes it live and prunes
    /// all but the newest `keep`.
    fn share(&self, version: u64, keep: usize) -> Result<(), SnapshotError> {
        self.upload(version)?;
        self.known_set().insert(version);
        self.set_live(version)?;
        self.prune(version, keep);
        Ok(())
    }

    /// The live pointer (`None`: none set yet).
    pub fn live(&self) -> Result<Option<u64>, SnapshotError> {
        let pointer = self.pointer.clone();
        let value = self
            .nats
            .run(async move { pointer.get(S::POINTER_KEY).await })
            .map_err(remote)?
            .map_err(remote)?;
        Ok(value.and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok()))
    }

    /// Points the live pointer at `version` (publish or roll back).
    pub fn set_live(&self, version: u64) -> Result<(), SnapshotError> {
        retrying(|| {
            let pointer = self.pointer.clone();
            self.nats
                .run(async move {
                    pointer
                        .put(S::POINTER_KEY, version.to_string().into())
                        .await
                })
                .map_err(remote)?
                .map_err(remote)
                .map(drop)
        })?;
        self.known_set().insert(version);
        Ok(())
    }

    /// Waits at most `timeout` for the watched pointer to differ from `seen`.
    pub fn wait_live_change(
        &self,
        seen: u64,
        timeout: Duration,
    ) -> Result<Option<u64>, SnapshotError> {
        let deadline = Instant::now() + timeout;
        let mut v = self
            .watched
            .value
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *v == seen || *v == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            v = self
                .watched
                .changed
                .wait_timeout(v, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let version = *v;
        drop(v);
        self.known_set().insert(version);
        Ok(Some(version))
    }
}

impl SnapshotStore for NatsSnapshots {
    fn versions(&self) -> Vec<u64> {
        self.known_set().iter().copied().collect()
    }

    fn path_of(&self, version: u64) -> PathBuf {
        self.cache.path_of(version)
    }

    fn read(&self, version: u64) -> Result<Snapshot, SnapshotError> {
        Ok(self.read_checkpointed(version)?.0)
    }

    fn read_checkpointed(&self, version: u64) -> Result<Checkpointed, SnapshotError> {
        self.fetch(version, Snapshot::read_checkpointed)
    }

    fn newest_valid_checkpointed(&self) -> (Option<Checkpointed>, Vec<(u64, SnapshotError)>) {
        self.newest_valid_by(Snapshot::read_checkpointed)
    }

    fn write_checkpointed(
        &self,
        snapshot: &Snapshot,
        checkpoint: &Checkpoint,
        keep: usize,
    ) -> Result<(), SnapshotError> {
        self.cache.write_checkpointed(snapshot, checkpoint, keep)?;
        self.share(snapshot.version, keep)
    }

    fn live(&self) -> Result<Option<u64>, SnapshotError> {
        NatsSnapshots::live(self)
    }

    fn set_live(&self, version: u64) -> Result<(), SnapshotError> {
        NatsSnapshots::set_live(self, version)
    }

    fn wait_live_change(&self, seen: u64, timeout: Duration) -> Result<Option<u64>, SnapshotError> {
        NatsSnapshots::wait_live_change(self, seen, timeout)
    }
}

impl VersionStore<SearchSnapshot> for NatsSnapshots<SearchSnapshot> {
    fn newest_valid(&self) -> (Option<SearchSnapshot>, Vec<(u64, SnapshotError)>) {
        self.newest_valid_by(SearchSnapshot::read)
    }

    fn read(&self, version: u64) -> Result<SearchSnapshot, SnapshotError> {
        self.fetch(version, SearchSnapshot::read)
    }

    fn write(&self, snapshot: &SearchSnapshot, keep: usize) -> Result<(), SnapshotError> {
        self.cache.write(snapshot, keep)?;
        self.share(snapshot.version, keep)
    }

    fn wait_live_change(&self, seen: u64, timeout: Duration) -> Result<Option<u64>, SnapshotError> {
        NatsSnapshots::wait_live_change(self, seen, timeout)
    }
}
