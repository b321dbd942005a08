// Opening: what may be in the data directory, and replaying the log into the state.

import CouponLog
import Foundation

extension CouponStore {
  /// The files CouponStore writes in its directory. Anything else is refused on open, so that a
  /// mistyped path (a home directory, another program's data) is never written into.
  static func isOwnFile(_ name: String) -> Bool {
    if name == "LOCK" { return true }
    if name.hasPrefix("log-"), name.hasSuffix(".seg") { return true }
    if name.hasPrefix("snapshot-"), name.hasSuffix(".snap") || name.hasSuffix(".tmp") {
      return true
    }
    return false
  }

  static func checkDirectoryContents(_ directory: String, fileSystem: any FileSystem)
    throws(CouponStoreError)
  {
    let names: [String]
    do {
      names = try fileSystem.contentsOfDirectory(directory)
    } catch {
      throw .io(error, while: "listing the data directory")
    }
    for name in names where !isOwnFile(name) {
      throw CouponStoreError(
        code: .unrecognizedFile,
        message: "the data directory holds \"\(name)\", which CouponStore did not write; open an "
          + "empty directory or one CouponStore created", path: directory + "/" + name)
    }
  }

  /// Syncs the last recovered segment before anything new is written.
  ///
  /// After a crash of the process (not of the machine) the records written since the last sync
  /// are still in the page cache: recovery reads and replays them, and new requests are decided
  /// against them. They must be durable before any new record is acknowledged, or a later power
  /// loss could drop them while keeping newer records that depend on them. Older segments were
  /// synced when the log rolled past them.
  static func makeRecoveredLogDurable(_ report: RecoveryReport, fileSystem: any FileSystem)
    throws(CouponStoreError)
  {
    guard let last = report.segments.last else { return }
    do {
      let fd = try fileSystem.openFile(last, options: .readWrite)
      defer { fileSystem.close(fd) }
      // Durability point: every recovered record is durable once this returns.
      try fileSystem.syncData(fd)
    } catch {
      throw .io(error, while: "syncing the recovered log")
    }
  }

  /// Replays every log record after `state.lastSequence` (the snapshot it was loaded from, or 0)
  /// into `state`, adding the bytes of the frames replayed to `replayedBytes`. With
  /// `throughSequence` (read-only), only the records up to it, from the segments that start at or
  /// before it. Segments the snapshot wholly covers are verified only with `verifyCovered`.
  static func replayLog(
    directory: String, options: Options, readOnly: Bool = false,
    throughSequence: UInt64 = .max, verifyCovered: Bool = false, into state: inout StoreState,
    replayedBytes: inout Int64
  ) throws(CouponStoreError) -> RecoveryReport {
    var recoveryOptions = RecoveryOptions()
    recoveryOptions.salvage = options.salvage && !readOnly
    recoveryOptions.readOnly = readOnly
    recoveryOptions.afterSequence = state.lastSequence
    recoveryOptions.throughSequence = throughSequence
    recoveryOptions.skipCoveredSegments = !verifyCovered
    let progress = options.openProgress
    var batcher = ReplayBatcher()
    do {
      let report = try recoverLog(
        fileSystem: options.fileSystem, directory: directory, options: recoveryOptions,
        progress: progress.map { report in
          { done, total in
            report(OpenProgress(bytesDone: done, bytesTotal: total, phase: .replayingLog))
          }
        }
      ) { record in
        replayedBytes += Int64(frameHeaderBytes + record.payload.count)
        try batcher.add(record, to: &state)
      }
      try batcher.flush(into: &state)
      return report
    } catch let error as ReplayBatcher.Failure {
      throw CouponStoreError(
        code: .corruption,
        message: "log record \(error.sequence) cannot be applied (\(error.reason)); the data is "
          + "damaged: restore a backup, or open with salvage to cut the log here",
        path: error.path, offset: error.offset)
    } catch let error as LogError {
      throw CouponStoreError(logError: error)
    } catch {
      throw CouponStoreError(code: .io, message: "recovery failed: \(error)")
    }
  }
}
