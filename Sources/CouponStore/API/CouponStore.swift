import CouponLog
import Foundation
import Synchronization

/// An embedded, crash-safe datastore for coupon campaigns and flash sales.
///
/// ```swift
/// let store = try await CouponStore.open(directory: "/var/lib/coupons")   // recovers
/// let spring = try await store.createCampaign(CampaignSpec(
///     name: "SpringPromo", stock: 10_000, codes: .generated(.hangulDigits)))
/// switch try await store.claim(campaign: spring.id, user: "user_123") {
/// case .claimed(let coupon): print(coupon.code)           // durable when this returns
/// case .limitReached(let existing): print(existing[0].code)
/// default: break
/// }
/// try await store.close()
/// ```
///
/// Every request goes to one writer thread that decides it against the in-memory state, appends
/// its event to the write-ahead log and applies it; a call returns only after the batch holding
/// its event was made durable with `fdatasync`. Reads go through the same queue, so they see only
/// durable state and always see the caller's own acknowledged writes.
///
/// Safe to share between any number of tasks.
public final class CouponStore: Sendable {
  /// The data directory.
  public let directory: String
  /// What recovery found when this store was opened.
  public let recovery: RecoverySummary

  private let writer: Writer
  private let snapshotter: Snapshotter
  private let fileSystem: any FileSystem
  private let lock: FileDescriptor
  private let closed = Mutex(false)

  private init(
    directory: String, recovery: RecoverySummary, writer: Writer, snapshotter: Snapshotter,
    fileSystem: any FileSystem, lock: FileDescriptor
  ) {
    self.directory = directory
    self.recovery = recovery
    self.writer = writer
    self.snapshotter = snapshotter
    self.fileSystem = fileSystem
    self.lock = lock
  }

  /// A store released without ``close()`` stops its threads and releases the directory here;
  /// everything it acknowledged was already durable.
  deinit {
    let wasOpen = closed.withLock { closed in
      defer { closed = true }
      return !closed
    }
    if wasOpen {
      writer.shutdown()
      fileSystem.unlock(lock)
    }
  }

  // MARK: Opening and closing

  /// Opens (creating if needed) the store in `directory`, recovering its state from disk.
  ///
  /// Takes an exclusive lock on the directory: a second open, from this process or another,
  /// fails with ``CouponStoreError/Code/locked`` until this store is closed. A torn record at the
  /// end of the log (a crash mid-write) is cut off; a damaged record before the end makes the
  /// open fail with ``CouponStoreError/Code/corruption`` naming the file and offset, unless
  /// ``Options/salvage`` is set. Recovery starts from the newest valid snapshot and replays the
  /// log after it; a damaged snapshot is skipped (see ``RecoverySummary/damagedSnapshots``) for
  /// an older one, and if none covers the log that remains, the open fails with
  /// ``CouponStoreError/Code/corruption`` naming the snapshot file.
  public static func open(directory: String, options: Options = Options())
    async throws(CouponStoreError) -> CouponStore
  {
    try options.validate()
    guard !directory.isEmpty else { throw .invalid("directory", "directory must not be empty") }
    let started = DispatchTime.now()
    let fs = options.fileSystem
    do {
      try fs.createDirectory(directory)
      // Durability point of the directory itself: its name in the parent is durable only once
      // the parent is synced (syncing the directory makes its entries durable, not its own
      // name). Without this a power loss could take the whole store, acknowledged claims and
      // all (found by the crash simulator). Every open, not only the one that created it: a
      // process crash between `mkdir` and this sync leaves a directory that exists but whose
      // name may still be unsynced.
      try fs.syncDirectory(parentDirectory(of: directory))
    } catch {
      throw .io(error, while: "creating the data directory")
    }
    let lock: FileDescriptor
    do {
      lock = try fs.lockDirectory(directory)
    } catch {
      if error.errno == EWOULDBLOCK || error.errno == EAGAIN {
        throw CouponStoreError(
          code: .locked,
          message: "the store in \(directory) is already open (by this or another process); "
            + "close it first", path: directory, syscall: error.syscall, errno: error.errno)
      }
      throw .io(error, while: "locking the data directory")
    }
    do throws(CouponStoreError) {
      try checkDirectoryContents(directory, fileSystem: fs)
      let recovered = try recoverState(directory: directory, options: options)
      let report = recovered.report
      try makeRecoveredLogDurable(report, fileSystem: fs)
      let log: LogWriter
      do {
        log = try LogWriter(
          fileSystem: fs, directory: directory, nextSequence: report.lastSequence + 1,
          options: LogWriterOptions(
            segmentBytesMax: options.segmentBytesMax, batchBytesMax: options.batchBytesMax))
      } catch {
        throw CouponStoreError.io(error, while: "starting a new log segment")
      }
      log.durableSequence = report.lastSequence
      let snapshotter = Snapshotter(
        directory: directory, options: options, latest: recovered.snapshot)
      let writer = Writer(
        engine: Engine(state: recovered.state, log: log),
        limits: Writer.Limits(
          batchRecordsMax: options.batchRecordsMax, batchBytesMax: options.batchBytesMax,
          synchronous: options.durability == .synchronous,
          snapshotLogBytes: options.snapshotLogBytes),
        clock: options.clock, snapshotter: snapshotter,
        logBytesSinceSnapshot: recovered.replayedBytes)
      snapshotter.writer = writer
      snapshotter.start()
      writer.start()
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
      let summary = RecoverySummary(
        recordsReplayed: report.recordsVisited, lastSequence: report.lastSequence,
        tornTailBytesCut: report.tornTail?.bytesCut ?? 0,
        salvagedBytesDropped: report.salvaged?.bytesDropped ?? 0, seconds: seconds,
        snapshotSequence: recovered.snapshot?.sequence ?? 0,
        damagedSnapshots: recovered.skipped.map(\.description))
      return CouponStore(
        directory: directory, recovery: summary, writer: writer, snapshotter: snapshotter,
        fileSystem: fs, lock: lock)
    } catch {
      fs.unlock(lock)
      throw error
    }
  }

  /// Stops accepting requests, waits until everything accepted is durable and answered, stops
  /// the writer, abandons a snapshot in progress (the log holds everything it would have
  /// covered), and releases the directory. Calling it twice is harmless.
  public func close() async throws(CouponStoreError) {
    let first = closed.withLock { closed in
      defer { closed = true }
      return !closed
    }
    guard first else { return }
    let reply = await writer.submit(.close)
    writer.join()
    snapshotter.stop()
    fileSystem.unlock(lock)
    if case .failure(let error) = reply, error.code != .closed { throw error }
  }

  // MARK: Campaigns

  /// Creates a campaign. Durable when this returns.
  ///
  /// - Throws: ``CouponStoreError/Code/invalidArgument`` naming the field for a bad spec (negative
  ///   stock, `endsAt` before `startsAt`, a pattern with fewer than 1,000 × stock combinations…),
  ///   ``CouponStoreError/Code/campaignExists`` if the id is taken.
  public func createCampaign(_ spec: CampaignSpec, requestID: String? = nil)
    async throws(CouponStoreError) -> Campaign
  {
    try Validate.spec(spec)
    let tag = try Validate.requestTag(requestID) { Validate.fingerprint(spec) }
    switch try await send(.createCampaign(spec, tag)) {
    case .campaign(let campaign): return campaign
    default: preconditionFailure("unexpected reply to createCampaign")
    }
  }

  /// The campaign with this id, or `nil`.
  public func campaign(_ id: CampaignID) async throws(CouponStoreError) -> Campaign? {
    try Validate.campaignID(id)
    switch try await send(.read(.campaign(id))) {
    case .optionalCampaign(let campaign): return campaign
    default: preconditionFailure("unexpected reply to campaign(_:)")
    }
  }

  /// Every campaign, in creation order.
  public func campaigns() async throws(CouponStoreError) -> [Campaign] {
    switch try await send(.read(.campaigns)) {
    case .campaigns(let campaigns): return campaigns
    default: preconditionFailure("unexpected reply to campaigns()")
    }
  }

  // MARK: Claims

  /// Claims one coupon of `campaign` for `user` (`nil`: anonymous issuance, only stock is
  /// checked). Durable when this returns.
  ///
  /// Rejections are values: ``ClaimResult/soldOut``, ``ClaimResult/limitReached(existing:)``
  /// (carrying the coupons the user holds, so a retry is harmless), ``ClaimResult/notStarted``,
  /// ``ClaimResult/ended``, ``ClaimResult/campaignNotFound``. With a `requestID`, a retry returns
  /// the first answer and changes nothing.
  public func claim(campaign: CampaignID, user: String?, requestID: String? = nil)
    async throws(CouponStoreError) -> ClaimResult
  {
    try Validate.campaignID(campaign)
    try Validate.user(user)
    let tag = try Validate.requestTag(requestID) { Self.claimFingerprint(campaign, user) }
    switch try await send(.claim(campaign: campaign, user: user, tag)) {
    case .claim(let result): return result
    default: preconditionFailure("unexpected reply to claim")
    }
  }

  /// Claims the named pool code for `user`. Outcomes besides those of
  /// ``claim(campaign:user:requestID:)``: ``ClaimResult/codeNotFound``,
  /// ``ClaimResult/codeTaken``. Durable when this returns.
  public func claim(code: String, user: String?, requestID: String? = nil)
    async throws(CouponStoreError) -> ClaimResult
  {
    try Validate.code(code)
    try Validate.user(user)
    let tag = try Validate.requestTag(requestID) {
      var print = Fingerprint(kind: 3)
      print.mix(code)
      print.mix(user)
      return print
    }
    switch try await send(.claimCode(code: code, user: user, tag)) {
    case .claim(let result): return result
    default: preconditionFailure("unexpected reply to claim(code:)")
    }
  }

  /// Claims many coupons in one call (up to 100,000), decided in order; one result per request.
  /// Durable when this returns.
  public func claim(batch: [ClaimRequest]) async throws(CouponStoreError) -> [ClaimResult] {
    guard batch.count <= Validate.batchClaimsMax else {
      throw .invalid("batch", "a batch holds at most \(Validate.batchClaimsMax) claims")
    }
    var claims: [(campaign: String, user: String?, tag: RequestTag?)] = []
    claims.reserveCapacity(batch.count)
    for request in batch {
      try Validate.campaignID(request.campaign)
      try Validate.user(request.user)
      let tag = try Validate.requestTag(request.requestID) {
        Self.claimFingerprint(request.campaign, request.user)
      }
      claims.append((request.campaign, request.user, tag))
    }
    if claims.isEmpty { return [] }
    switch try await send(.claimBatch(claims)) {
    case .claims(let results): return results
    default: preconditionFailure("unexpected reply to claim(batch:)")
    }
  }

  // MARK: Reads

  /// A page of `campaign`'s claims in issue order, starting after `cursor` (`nil`: from the
  /// first). Returns `nil` if the campaign does not exist.
  public func claims(of campaign: CampaignID, after cursor: ClaimCursor? = nil, limit: Int = 1000)
    async throws(CouponStoreError) -> ClaimPage?
  {
    try Validate.campaignID(campaign)
    guard (1...Validate.claimsPageMax).contains(limit) else {
      throw .invalid("limit", "limit must be 1–\(Validate.claimsPageMax), got \(limit)")
    }
    let position = cursor?.position ?? 0
    guard position >= 0 else { throw .invalid("cursor", "cursor position must be ≥ 0") }
    switch try await send(.read(.claims(campaign: campaign, after: position, limit: limit))) {
    case .page(let page): return page
    default: preconditionFailure("unexpected reply to claims(of:)")
    }
  }

  /// Every coupon `user` holds, oldest first.
  public func coupons(of user: String) async throws(CouponStoreError) -> [Coupon] {
    try Validate.user(user)
    switch try await send(.read(.coupons(user: user))) {
    case .coupons(let coupons): return coupons
    default: preconditionFailure("unexpected reply to coupons(of:)")
    }
  }

  /// The coupon with this code, or `nil`.
  public func coupon(code: String) async throws(CouponStoreError) -> Coupon? {
    guard CodeRules.lookupProblem(code) == nil else { return nil }
    switch try await send(.read(.coupon(code: code))) {
    case .coupon(let coupon): return coupon
    default: preconditionFailure("unexpected reply to coupon(code:)")
    }
  }

  /// Store-wide counters.
  public func statistics() async throws(CouponStoreError) -> StoreStatistics {
    switch try await send(.read(.statistics)) {
    case .statistics(var statistics):
      let status = snapshotter.status
      statistics.snapshotSequence = status.sequence
      statistics.snapshotsWritten = status.written
      statistics.snapshotInProgress = status.busy
      statistics.lastSnapshotError = status.lastError?.description
      (statistics.logWrites, statistics.logSyncs) = writer.ioCounts
      return statistics
    default: preconditionFailure("unexpected reply to statistics()")
    }
  }

  // MARK: Snapshots

  /// Writes a snapshot of everything acknowledged so far and returns once it is durable.
  ///
  /// Claims keep flowing meanwhile: the writer only seals the log (rolls its segment), and the
  /// snapshot is built on a background thread from the previous snapshot and the sealed log. If
  /// nothing was logged since the last snapshot, that one is returned (on a store that never
  /// logged anything: an empty path and sequence 0). Snapshots are also taken automatically, see
  /// ``Options/snapshotLogBytes``.
  ///
  /// - Throws: the snapshot's I/O error (the store goes on: the log still holds everything),
  ///   ``CouponStoreError/Code/closed`` if the store closes first.
  @discardableResult
  public func snapshot() async throws(CouponStoreError) -> SnapshotInfo {
    switch try await send(.snapshot) {
    case .snapshot(let info): return info
    default: preconditionFailure("unexpected reply to snapshot()")
    }
  }

  // MARK: Plumbing

  func send(_ request: Request) async throws(CouponStoreError) -> Reply {
    let reply = await writer.submit(request)
    if case .failure(let error) = reply { throw error }
    return reply
  }

  /// The directory holding `path`: `/var/lib` for `/var/lib/coupons`, `.` for `coupons`.
  static func parentDirectory(of path: String) -> String {
    var trimmed = Substring(path)
    while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
    guard let slash = trimmed.lastIndex(of: "/") else { return "." }
    if slash == trimmed.startIndex { return "/" }
    return String(trimmed[..<slash])
  }

  static func claimFingerprint(_ campaign: String, _ user: String?) -> Fingerprint {
    var print = Fingerprint(kind: 2)
    print.mix(campaign)
    print.mix(user)
    return print
  }
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
