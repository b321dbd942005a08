// Opening with snapshots: which snapshot to start from, and the log after it.
//
// The rules (also at the top of SnapshotFormat.swift and in FORMAT.md): snapshots are tried
// newest first; a damaged one is skipped and reported; the first valid one is loaded and the log
// is replayed after it, which must reach back to its sequence + 1. Without a valid snapshot the
// whole log is replayed, if it still starts at sequence 1; otherwise nothing covers the gap and
// opening fails, naming the newest snapshot and its damage.

import CouponLog

/// A finished snapshot file in the data directory.
struct SnapshotEntry: Sendable, Hashable {
  /// The last log sequence it covers (from its name).
  var sequence: UInt64
  var path: String
}

/// What recovery rebuilt, and from what.
struct RecoveredState {
  var state: StoreState
  var report: RecoveryReport
  /// The snapshot recovery started from, if any.
  var snapshot: SnapshotEntry?
  /// Newer snapshots that were skipped because they are damaged.
  var skipped: [SnapshotDamage]
  /// Bytes of the log records replayed after the snapshot (frames included).
  var replayedBytes: Int64
}

extension CouponStore {
  /// The finished snapshots of `directory`, newest first, and the temporary files a crash while
  /// writing one left behind.
  static func listSnapshots(directory: String, fileSystem: any FileSystem) throws(CouponStoreError)
    -> (snapshots: [SnapshotEntry], temporaries: [String])
  {
    let names: [String]
    do {
      names = try fileSystem.contentsOfDirectory(directory)
    } catch {
      throw .io(error, while: "listing the data directory")
    }
    var snapshots: [SnapshotEntry] = []
    var temporaries: [String] = []
    for name in names {
      if let sequence = SnapshotFile.sequence(fromName: name) {
        snapshots.append(SnapshotEntry(sequence: sequence, path: joinPath(directory, name)))
      } else if SnapshotFile.isTemporary(name) {
        temporaries.append(joinPath(directory, name))
      }
    }
    snapshots.sort { $0.sequence > $1.sequence }
    return (snapshots, temporaries)
  }

  /// Rebuilds the state: the newest valid snapshot, then the log after it (see the rules above).
  /// A writable recovery also deletes temporary snapshot files. Log segments the snapshot wholly
  /// covers (kept for the older snapshot) are not read unless `verifyCovered` (for `verify`).
  static func recoverState(
    directory: String, options: Options, readOnly: Bool = false, verifyCovered: Bool = false
  ) throws(CouponStoreError) -> RecoveredState {
    let fileSystem = options.fileSystem
    let (snapshots, temporaries) = try listSnapshots(
      directory: directory, fileSystem: fileSystem)
    if !readOnly && !temporaries.isEmpty {
      do {
        for path in temporaries { try fileSystem.removeFile(path) }
        // Durability point: the removals are durable once the directory is synced.
        try fileSystem.syncDirectory(directory)
      } catch {
        throw .io(error, while: "removing an unfinished snapshot")
      }
    }
    let progress = options.openProgress
    var skipped: [SnapshotDamage] = []
    for entry in snapshots {
      var state: StoreState
      do {
        state = try StoreState.loadSnapshot(
          path: entry.path, fileSystem: fileSystem, requestWindow: options.requestIDWindow,
          parallel: true,
          progress: progress.map { report in
            { done, total in
              report(OpenProgress(bytesDone: done, bytesTotal: total, phase: .loadingSnapshot))
            }
          })
      } catch {
        switch error {
        case .damaged(let damage):
          skipped.append(damage)
          continue
        case .io(let error):
          throw .io(error, while: "reading a snapshot")
        }
      }
      guard state.lastSequence == entry.sequence else {
        skipped.append(
          SnapshotDamage(
            path: entry.path, offset: 0,
            reason: "its header covers sequence \(state.lastSequence), its name \(entry.sequence)"))
        continue
      }
      try checkLogReaches(entry, directory: directory, fileSystem: fileSystem)
      var replayedBytes: Int64 = 0
      let report = try replayLog(
        directory: directory, options: options, readOnly: readOnly, verifyCovered: verifyCovered,
        into: &state, replayedBytes: &replayedBytes)
      return RecoveredState(
        state: state, report: report, snapshot: entry, skipped: skipped,
        replayedBytes: replayedBytes)
    }
    if let newest = skipped.first,
      try firstSegment(directory: directory, fileSystem: fileSystem) > 1
    {
      let olderNote =
        skipped.count > 1
        ? " (the \(skipped.count - 1) older snapshot(s) are damaged too)" : ""
      throw CouponStoreError(
        code: .corruption,
        message: "snapshot \(newest.path) is damaged (\(newest.reason))\(olderNote), and no "
          + "older valid snapshot with the log it needs remains; restore a backup",
        path: newest.path, offset: newest.offset)
    }
    var state = StoreState(requestWindow: options.requestIDWindow)
    var replayedBytes: Int64 = 0
    let report = try replayLog(
      directory: directory, options: options, readOnly: readOnly, into: &state,
      replayedBytes: &replayedBytes)
    return RecoveredState(
      state: state, report: report, snapshot: nil, skipped: skipped, replayedBytes: replayedBytes)
  }

  /// The first sequence of the oldest log segment (`UInt64.max` if there is none).
  static func firstSegment(directory: String, fileSystem: any FileSystem) throws(CouponStoreError)
    -> UInt64
  {
    do {
      return try fileSystem.contentsOfDirectory(directory)
        .compactMap(SegmentFile.firstSequence(fromName:)).min() ?? .max
    } catch {
      throw .io(error, while: "listing the data directory")
    }
  }

  /// Throws unless the log holds every record after `snapshot` (segments that end at or before
  /// it may be gone; one starting later would leave a hole between the snapshot and the log).
  static func checkLogReaches(
    _ snapshot: SnapshotEntry, directory: String, fileSystem: any FileSystem
  ) throws(CouponStoreError) {
    let first = try firstSegment(directory: directory, fileSystem: fileSystem)
    guard first == .max || first <= snapshot.sequence + 1 else {
      throw CouponStoreError(
        code: .corruption,
        message: "the log after snapshot \(snapshot.path) starts at sequence \(first), so "
          + "records \(snapshot.sequence + 1)–\(first - 1) are missing; restore a backup",
        path: joinPath(directory, SegmentFile.name(firstSequence: first)), offset: 0)
    }
  }
}
