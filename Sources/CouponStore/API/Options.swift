@_exported import CouponLog
import Foundation

extension CouponStore {
  /// When a write is acknowledged.
  public enum Durability: Sendable, Hashable {
    /// Acknowledge only after `fdatasync` made the write's batch durable (the default): an
    /// acknowledged write survives a power loss.
    case synchronous
    /// Acknowledge after the write reached the operating system, without `fdatasync`: survives a
    /// crash of the process but not of the machine. For tests and benchmarks that measure
    /// everything but the disk; never for production.
    case noSync
  }

  /// Settings of an open store. The defaults suit a production server.
  public struct Options: Sendable {
    /// When writes are acknowledged (default: after `fdatasync`).
    public var durability: Durability = .synchronous
    /// Most requests the writer decides per batch (bounds a batch's latency; default 16,384).
    public var batchRecordsMax: Int = 16_384
    /// Most bytes of encoded events per `pwrite` (default 4 MiB).
    public var batchBytesMax: Int = 4 << 20
    /// Log segment size at which a new segment file is started (default 64 MiB).
    public var segmentBytesMax: Int = 64 << 20
    /// How many request ids are remembered for idempotency, oldest forgotten first
    /// (default 1,000,000; 0 disables idempotency).
    public var requestIDWindow: Int = 1_000_000
    /// On opening, cut the log at the first corrupt record instead of refusing to open. The
    /// records after it are lost; ``CouponStore/recovery`` says how many bytes were dropped.
    public var salvage: Bool = false
    /// The clock the writer stamps events with (injectable for tests and simulation).
    public var clock: @Sendable () -> Date = { Date() }
    /// Every system call goes through this seam (injectable for fault-injection tests).
    public var fileSystem: any FileSystem = RealFileSystem()
    /// Called during ``CouponStore/open(directory:options:)`` with the recovery's progress.
    public var openProgress: (@Sendable (OpenProgress) -> Void)?
    /// A snapshot is taken in the background once this many bytes of log were written since the
    /// last one (default 256 MiB); 0 turns automatic snapshots off (``CouponStore/snapshot()``
    /// still takes one). Opening replays at most about this much log after the newest snapshot.
    public var snapshotLogBytes: Int = 256 << 20

    /// Tests only (internal, reachable through `@testable import`): lets ``segmentBytesMax`` go
    /// below its 1 MiB floor and ``snapshotLogBytes`` below its 64 KiB floor, so that the crash
    /// simulator rolls segments and takes snapshots every few records.
    var allowsTinySegments = false

    /// The default options.
    public init() {}

    /// Checks every option; called by `open`.
    func validate() throws(CouponStoreError) {
      guard (1...1_000_000).contains(batchRecordsMax) else {
        throw .invalid("batchRecordsMax", "batchRecordsMax must be 1–1,000,000")
      }
      guard (64 << 10...1 << 30).contains(batchBytesMax) else {
        throw .invalid("batchBytesMax", "batchBytesMax must be 64 KiB–1 GiB")
      }
      let segmentBytesMin = allowsTinySegments ? segmentHeaderBytes + 1 : 1 << 20
      guard (segmentBytesMin...1 << 40).contains(segmentBytesMax) else {
        throw .invalid("segmentBytesMax", "segmentBytesMax must be 1 MiB–1 TiB")
      }
      guard requestIDWindow >= 0 else {
        throw .invalid("requestIDWindow", "requestIDWindow must be ≥ 0")
      }
      let snapshotLogBytesMin = allowsTinySegments ? 1 : 64 << 10
      guard snapshotLogBytes == 0 || (snapshotLogBytesMin...1 << 40).contains(snapshotLogBytes)
      else {
        throw .invalid("snapshotLogBytes", "snapshotLogBytes must be 0 (off) or 64 KiB–1 TiB")
      }
    }
  }

  /// Progress of opening a store: first the snapshot is loaded, then the log after it replayed.
  public struct OpenProgress: Sendable, Hashable {
    /// What opening is busy with.
    public enum Phase: Sendable, Hashable {
      /// Reading and checking the newest snapshot (bytes are the snapshot file's).
      case loadingSnapshot
      /// Replaying the log after the snapshot (bytes are the log segments').
      case replayingLog
    }

    /// Bytes of this phase done so far.
    public var bytesDone: Int64
    /// Bytes of this phase in all.
    public var bytesTotal: Int64
    /// The phase the bytes belong to.
    public var phase: Phase = .replayingLog
  }

  /// What recovery found when the store was opened.
  public struct RecoverySummary: Sendable, Hashable {
    /// Log records replayed.
    public var recordsReplayed: Int
    /// The last sequence number found.
    public var lastSequence: UInt64
    /// Bytes of a torn tail cut from the last segment (a crash mid-write); 0 if none.
    public var tornTailBytesCut: Int64
    /// With ``Options/salvage``: bytes dropped at and after the first corrupt record; 0 if none.
    public var salvagedBytesDropped: Int64
    /// Seconds spent opening.
    public var seconds: Double
    /// The log sequence of the snapshot recovery started from; 0 if it replayed the whole log.
    public var snapshotSequence: UInt64 = 0
    /// Newer snapshots that recovery skipped because they are damaged (path, offset, reason),
    /// falling back to an older snapshot or to the whole log; empty normally.
    public var damagedSnapshots: [String] = []
  }

  /// A snapshot made durable by ``CouponStore/snapshot()``.
  public struct SnapshotInfo: Sendable, Hashable {
    /// The snapshot file.
    public var path: String
    /// The last log sequence number it covers.
    public var sequence: UInt64
    /// The file's size in bytes.
    public var bytes: Int64
  }
}
