import CouponLog
import Foundation
import Synchronization

@testable import CouponStore

#if canImport(Glibc)
  import Glibc
#endif

/// Every field of a ``StoreState`` in a comparable form, built without the snapshot code (so a
/// field the snapshot forgot shows up as a difference). Internal orderings that carry no meaning
/// (dictionary order, the request FIFO's compaction point) are normalised.
struct StateDump: Equatable {
  struct CampaignDump: Equatable {
    var record: CampaignRecord
    var stock: Int
    var issueOrder: [UInt32]
    var available: [UInt32]
    var countsByState: [Int]
    var hasGenerator: Bool
  }

  struct CouponDump: Equatable {
    var campaign: UInt32
    var owner: UInt32
    var nextOfOwner: UInt32
    var poolSlot: UInt32
    var issuedAt: Int64
    var redemptions: UInt16
    var state: CouponState
  }

  struct RequestDump: Equatable {
    var id: String
    var fingerprint: UInt64
    var outcome: RememberedOutcome
  }

  struct StagedDump: Equatable {
    var campaign: UInt32
    var codes: [String]
  }

  var campaigns: [CampaignDump]
  var campaignIndex: [String: UInt32]
  var coupons: [CouponDump]
  var codes: [String]
  var users: [String]
  var userHeads: [UInt32]
  var lockExpiry: [UInt32: Int64]
  var history: [UInt32: [HistoryEntry]]
  var staged: [UInt64: StagedDump]
  var requests: [RequestDump]
  var lastSequence: UInt64
  /// Whether every code and user id is found at its own id (the hash index agrees with the
  /// strings).
  var indexesConsistent: Bool

  init(_ state: StoreState) {
    campaigns = state.campaigns.map {
      CampaignDump(
        record: $0.record, stock: $0.stock, issueOrder: $0.issueOrder, available: $0.available,
        countsByState: $0.countsByState, hasGenerator: $0.generator != nil)
    }
    campaignIndex = state.campaignIndex
    coupons = state.coupons.map {
      CouponDump(
        campaign: $0.campaign, owner: $0.owner, nextOfOwner: $0.nextOfOwner,
        poolSlot: $0.poolSlot, issuedAt: $0.issuedAt, redemptions: $0.redemptions,
        state: $0.state)
    }
    codes = (0..<state.codes.count).map { state.codes.string(of: UInt32($0)) }
    users = (0..<state.users.count).map { state.users.string(of: UInt32($0)) }
    userHeads = state.userHeads
    lockExpiry = state.lockExpiry
    history = state.history
    staged = state.stagedUploads.mapValues { upload in
      StagedDump(
        campaign: upload.campaign,
        codes: upload.coupons.map { $0 == CouponRecord.none ? "" : state.codes.string(of: $0) })
    }
    requests = state.requestOrder[state.requestOrderHead...].compactMap { id in
      state.requests[id].map {
        RequestDump(id: id, fingerprint: $0.fingerprint, outcome: $0.outcome)
      }
    }
    lastSequence = state.lastSequence
    let codeTable = state.codes
    let userTable = state.users
    indexesConsistent =
      codes.enumerated().allSatisfy { codeTable.find(ascii: $0.element) == UInt32($0.offset) }
      && users.enumerated().allSatisfy { userTable.find(ascii: $0.element) == UInt32($0.offset) }
  }

  /// The names of the fields that differ (empty when equal): a readable test failure.
  func differences(from other: StateDump) -> [String] {
    var names: [String] = []
    if campaigns != other.campaigns { names.append("campaigns") }
    if campaignIndex != other.campaignIndex { names.append("campaignIndex") }
    if coupons != other.coupons { names.append("coupons") }
    if codes != other.codes { names.append("codes") }
    if users != other.users { names.append("users") }
    if userHeads != other.userHeads { names.append("userHeads") }
    if lockExpiry != other.lockExpiry { names.append("lockExpiry") }
    if history != other.history { names.append("history") }
    if staged != other.staged { names.append("staged") }
    if requests != other.requests { names.append("requests") }
    if lastSequence != other.lastSequence {
      names.append("lastSequence \(lastSequence) vs \(other.lastSequence)")
    }
    if indexesConsistent != other.indexesConsistent { names.append("indexesConsistent") }
    return names
  }
}

extension StringTable {
  func find(ascii text: String) -> UInt32? {
    text.withUTF8Bytes { find($0) }
  }
}

/// Loading a data directory's state without opening a store (read-only, no lock).
enum StateLoader {
  /// What opening would recover: the newest valid snapshot plus the log after it.
  static func recovered(_ directory: String) throws -> StoreState {
    try CouponStore.recoverState(
      directory: directory, options: CouponStore.Options(), readOnly: true
    ).state
  }

  /// The whole log replayed from sequence 1, ignoring snapshots.
  static func fromLogOnly(_ directory: String) throws -> StoreState {
    var state = StoreState(requestWindow: CouponStore.Options().requestIDWindow)
    var bytes: Int64 = 0
    _ = try CouponStore.replayLog(
      directory: directory, options: CouponStore.Options(), readOnly: true, into: &state,
      replayedBytes: &bytes)
    return state
  }
}

/// Names of the files of a data directory, by kind.
enum StoreFiles {
  static func names(_ directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
  }
  static func snapshots(_ directory: String) throws -> [String] {
    try names(directory).filter { $0.hasSuffix(".snap") }.map { directory + "/" + $0 }
  }
  static func temporaries(_ directory: String) throws -> [String] {
    try names(directory).filter { $0.hasSuffix(".tmp") }
  }
  static func segments(_ directory: String) throws -> [String] {
    try names(directory).filter { $0.hasSuffix(".seg") }
  }
  static func bytes(_ directory: String, suffix: String) throws -> Int {
    try names(directory).filter { $0.hasSuffix(suffix) }.reduce(0) {
      $0 + (try FileSurgery.size(directory + "/" + $1))
    }
  }
}

/// The real file system with a crash switch: at an armed point the call fails with `EIO`, and
/// from then on every call that would change the disk fails too, as if the process had died there
/// (reads still work). A second switch makes only the snapshot file's `fdatasync` fail, without
/// "crashing", to test that a failed snapshot leaves the store running.
final class CrashingFileSystem: FileSystem, @unchecked Sendable {
  /// Where to crash.
  enum Point: Equatable {
    /// At the n-th (1-based) write to a temporary snapshot file.
    case snapshotWrite(Int)
    /// At the `fdatasync` of the temporary snapshot file.
    case snapshotSync
    /// At the rename of the temporary snapshot file to its final name.
    case snapshotRename
    /// Right after that rename succeeded, at the directory sync that should make it durable.
    case directorySyncAfterSnapshotRename
    /// At the n-th (1-based) deletion of a log segment.
    case segmentRemoval(Int)
  }

  // Everything below is guarded by `lock`; `real` is the stateless real file system.
  private let real = RealFileSystem()
  private let lock = NSLock()
  private var armed: Point?
  private var dead = false
  private var failSnapshotSyncs = false
  private var renamedSnapshot: (from: String, to: String)?
  private var snapshotWrites = 0
  private var segmentRemovals = 0
  private var paths: [Int32: String] = [:]

  /// Crashes at `point`; counted points count from now.
  func arm(_ point: Point) {
    lock.withLock {
      armed = point
      snapshotWrites = 0
      segmentRemovals = 0
    }
  }
  func failSnapshotSync(_ fail: Bool) { lock.withLock { failSnapshotSyncs = fail } }
  var crashed: Bool { lock.withLock { dead } }
  /// The snapshot rename that happened before a crash at ``Point/directorySyncAfterSnapshotRename``
  /// (a test undoes it to model a power loss that lost the unsynced directory entry).
  var lastSnapshotRename: (from: String, to: String)? { lock.withLock { renamedSnapshot } }

  private static func eio(_ syscall: String, _ path: String) -> SystemCallError {
    SystemCallError(syscall: syscall, errno: EIO, path: path)
  }

  /// Checks whether this call crashes (or comes after a crash).
  private func check(_ syscall: String, _ path: String, crashesAt point: Point?)
    throws(SystemCallError)
  {
    let fail = lock.withLock { () -> Bool in
      if dead { return true }
      if let point, point == armed {
        dead = true
        return true
      }
      return false
    }
    if fail { throw Self.eio(syscall, path) }
  }

  func openFile(_ path: String, options: OpenOptions) throws(SystemCallError) -> FileDescriptor {
    if !options.contains(.readOnly) { try check("open", path, crashesAt: nil) }
    let fd = try real.openFile(path, options: options)
    lock.withLock { paths[fd.rawValue] = path }
    return fd
  }
  func close(_ fd: FileDescriptor) {
    lock.withLock { _ = paths.removeValue(forKey: fd.rawValue) }
    real.close(fd)
  }
  private func path(_ fd: FileDescriptor) -> String { lock.withLock { paths[fd.rawValue] ?? "" } }

  func write(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int64)
    throws(SystemCallError)
  {
    let path = path(fd)
    var point: Point?
    if path.hasSuffix(".tmp") {
      point = .snapshotWrite(
        lock.withLock {
          snapshotWrites += 1; return snapshotWrites
        })
    }
    try check("pwrite", path, crashesAt: point)
    try real.write(fd, bytes, at: offset)
  }
  func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64)
    throws(SystemCallError) -> Int
  { try real.read(fd, into: buffer, at: offset) }
  func syncData(_ fd: FileDescriptor) throws(SystemCallError) {
    let path = path(fd)
    let isSnapshot = path.hasSuffix(".tmp")
    try check("fdatasync", path, crashesAt: isSnapshot ? .snapshotSync : nil)
    if isSnapshot && lock.withLock({ failSnapshotSyncs }) { throw Self.eio("fdatasync", path) }
    try real.syncData(fd)
  }
  func sync(_ fd: FileDescriptor) throws(SystemCallError) {
    try check("fsync", path(fd), crashesAt: nil)
    try real.sync(fd)
  }
  func truncate(_ fd: FileDescriptor, to length: Int64) throws(SystemCallError) {
    try check("ftruncate", path(fd), crashesAt: nil)
    try real.truncate(fd, to: length)
  }
  func size(of fd: FileDescriptor) throws(SystemCallError) -> Int64 { try real.size(of: fd) }
  func rename(_ from: String, to: String) throws(SystemCallError) {
    try check("rename", from, crashesAt: from.hasSuffix(".tmp") ? .snapshotRename : nil)
    try real.rename(from, to: to)
    if from.hasSuffix(".tmp") {
      lock.withLock {
        renamedSnapshot = (from, to)
        if armed == .directorySyncAfterSnapshotRename { armed = nil; pendingDirectoryCrash = true }
      }
    }
  }
  private var pendingDirectoryCrash = false
  func removeFile(_ path: String) throws(SystemCallError) {
    var point: Point?
    if (path as NSString).lastPathComponent.hasPrefix("log-") {
      point = .segmentRemoval(
        lock.withLock {
          segmentRemovals += 1; return segmentRemovals
        })
    }
    try check("unlink", path, crashesAt: point)
    try real.removeFile(path)
  }
  func contentsOfDirectory(_ path: String) throws(SystemCallError) -> [String] {
    try real.contentsOfDirectory(path)
  }
  func createDirectory(_ path: String) throws(SystemCallError) {
    try check("mkdir", path, crashesAt: nil)
    try real.createDirectory(path)
  }
  func fileExists(_ path: String) -> Bool { real.fileExists(path) }
  func syncDirectory(_ path: String) throws(SystemCallError) {
    let crashNow = lock.withLock { () -> Bool in
      guard pendingDirectoryCrash else { return false }
      pendingDirectoryCrash = false
      dead = true
      return true
    }
    if crashNow { throw Self.eio("fsync", path) }
    try check("fsync", path, crashesAt: nil)
    try real.syncDirectory(path)
  }
  func lockDirectory(_ path: String) throws(SystemCallError) -> FileDescriptor {
    try real.lockDirectory(path)
  }
  func unlock(_ fd: FileDescriptor) { real.unlock(fd) }
}
