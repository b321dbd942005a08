// What `inspect` and `verify` report about snapshot files.

import CouponLog

/// A snapshot file as `inspect` found it.
public struct SnapshotInspection: Sendable, Hashable {
  /// The file.
  public var path: String
  /// The last log sequence number it covers (from its name).
  public var sequence: UInt64
  /// Its size in bytes.
  public var bytes: Int64
  /// Whether recovery starts from it.
  public var isUsed: Bool
  /// What is wrong with it (with the offset of the damaged block), or `nil` if it passed every
  /// check that was run (with `verifySnapshots`: all of them).
  public var damage: String?
}

extension CouponStore {
  /// Describes every snapshot file and, with `verify`, checks each in full and compares the
  /// newest with what its base and the log rebuild. Returns the descriptions and the problems.
  static func inspectSnapshots(
    _ recovered: RecoveredState, directory: String, options: Options, verify: Bool
  ) throws(CouponStoreError) -> ([SnapshotInspection], [String]) {
    let fileSystem = options.fileSystem
    let (entries, _) = try listSnapshots(directory: directory, fileSystem: fileSystem)
    var problems = recovered.skipped.map { "damaged snapshot: \($0)" }
    var found: [SnapshotInspection] = []
    var valid: [SnapshotEntry] = []
    for entry in entries {
      var inspection = SnapshotInspection(
        path: entry.path, sequence: entry.sequence, bytes: 0,
        isUsed: entry == recovered.snapshot,
        damage: recovered.skipped.first { $0.path == entry.path }?.description)
      do {
        let fd = try fileSystem.openFile(entry.path, options: .readOnly)
        defer { fileSystem.close(fd) }
        inspection.bytes = try fileSystem.size(of: fd)
      } catch {
        throw .io(error, while: "measuring \(entry.path)")
      }
      if verify && inspection.damage == nil && !inspection.isUsed
        && entry.sequence < (recovered.snapshot?.sequence ?? .max)
      {
        // Not read by recovery (an older one, the fallback): check it now.
        do {
          let state = try StoreState.loadSnapshot(
            path: entry.path, fileSystem: fileSystem, requestWindow: options.requestIDWindow)
          if state.lastSequence != entry.sequence {
            inspection.damage = "its header covers sequence \(state.lastSequence)"
          }
        } catch {
          switch error {
          case .damaged(let damage): inspection.damage = damage.description
          case .io(let error): throw .io(error, while: "reading a snapshot")
          }
        }
        if let damage = inspection.damage, recovered.skipped.allSatisfy({ $0.path != entry.path }) {
          problems.append("damaged snapshot: \(damage)")
        }
      }
      if inspection.damage == nil && (inspection.isUsed || verify) { valid.append(entry) }
      found.append(inspection)
    }
    if verify, let newest = recovered.snapshot,
      let base = valid.first(where: { $0.sequence < newest.sequence })
    {
      if let mismatch = try rebuildMismatch(
        newest: recovered.state, newestEntry: newest, base: base, directory: directory,
        options: options)
      {
        problems.append(mismatch)
      }
    }
    return (found, problems)
  }

  /// Rebuilds the state at `newestEntry.sequence` from `base` and the log, and compares it with
  /// the newest snapshot's state (`newest`, which has the log after it applied as well, so the
  /// comparison is made after replaying the same log onto both). Returns a problem, or `nil`.
  private static func rebuildMismatch(
    newest: StoreState, newestEntry: SnapshotEntry, base: SnapshotEntry, directory: String,
    options: Options
  ) throws(CouponStoreError) -> String? {
    let fileSystem = options.fileSystem
    var rebuilt: StoreState
    do {
      rebuilt = try StoreState.loadSnapshot(
        path: base.path, fileSystem: fileSystem, requestWindow: options.requestIDWindow)
    } catch {
      return nil  // already reported as damaged
    }
    do {
      _ = try recoverLog(
        fileSystem: fileSystem, directory: directory,
        options: RecoveryOptions(afterSequence: base.sequence, readOnly: true)
      ) { record in
        try rebuilt.replay(type: record.type, payload: record.payload, sequence: record.sequence)
      }
      guard rebuilt.lastSequence == newest.lastSequence else {
        return "snapshot \(base.path) and the log rebuild sequence \(rebuilt.lastSequence), "
          + "snapshot \(newestEntry.path) and the log \(newest.lastSequence)"
      }
      if try rebuilt.snapshotDigest() != newest.snapshotDigest() {
        return "snapshot \(base.path) plus the log does not rebuild the state of snapshot "
          + "\(newestEntry.path) plus the log: one of them is wrong"
      }
      return nil
    } catch {
      return "the log after snapshot \(base.path) cannot be replayed onto it: \(error)"
    }
  }
}
