// Reading a snapshot file back into a StoreState.
//
// The file is streamed in 8 MiB chunks; every block is verified (checksum under the file's salt,
// index, length, section order) before its records are decoded, so a damaged file is reported
// with the offset of the block that holds the damage. Records are decoded straight from the
// chunk buffer. After the last block, the state is checked as a whole: counts against the
// summary, every cross-reference in range, every coupon in exactly one issue list or pool slot of
// its campaign, per-state counts, each user's coupon list ending after exactly the coupons the
// user owns. Nothing in a snapshot is trusted before it passed these checks, so no file, however
// damaged, can make the store trap or loop later.

import CouponLog
import Dispatch

/// Why a snapshot could not be loaded.
enum SnapshotLoadError: Error {
  /// The file is damaged (or from a newer version): recovery skips it and tries an older one.
  case damaged(SnapshotDamage)
  /// A system call failed: recovery stops.
  case io(SystemCallError)
}

/// A decoding problem inside one block; the reader adds the file and the block's offset.
struct SnapshotDecodeError: Error {
  var reason: String
  init(_ reason: String) { self.reason = reason }
}

/// Streams the verified blocks of a snapshot file.
struct SnapshotBlockReader {
  static let chunkBytes = 8 << 20

  /// One verified block; the payload is borrowed from the reader's buffer until the next call.
  struct Block {
    var section: UInt16
    var offset: Int64
    var payload: UnsafeRawBufferPointer
  }

  let fileSystem: any FileSystem
  let path: String
  let fd: FileDescriptor
  let fileBytes: Int64
  private(set) var header: SnapshotHeader
  private var seed: CRC32C
  let progress: ((Int64, Int64) -> Void)?

  private let buffer: UnsafeMutableRawBufferPointer
  private var windowStart: Int64 = 0
  private var windowCount = 0
  /// The offset of the next block.
  private(set) var position = Int64(snapshotHeaderBytes)
  private var nextIndex: UInt32 = 0

  /// Opens the file and verifies its header. Call ``close()`` when done.
  init(fileSystem: any FileSystem, path: String, progress: ((Int64, Int64) -> Void)? = nil)
    throws(SnapshotLoadError)
  {
    self.fileSystem = fileSystem
    self.path = path
    self.progress = progress
    do {
      fd = try fileSystem.openFile(path, options: .readOnly)
    } catch {
      throw .io(error.withPath(path))
    }
    buffer = UnsafeMutableRawBufferPointer.allocate(
      byteCount: Self.chunkBytes + snapshotBlockBytesMax + snapshotBlockHeaderBytes, alignment: 16)
    do {
      fileBytes = try fileSystem.size(of: fd)
    } catch {
      buffer.deallocate()
      fileSystem.close(fd)
      throw .io(error.withPath(path))
    }
    // Placeholders until the header is read (all stored properties must be set first).
    header = SnapshotHeader(salt: 0, lastSequence: 0, createdAtMillis: 0)
    seed = CRC32C()
    do {
      guard try load(0, snapshotHeaderBytes) else {
        throw SnapshotLoadError.damaged(
          SnapshotDamage(path: path, offset: 0, reason: "file is shorter than a header"))
      }
      header = try SnapshotHeader(decoding: window(0, snapshotHeaderBytes))
      seed = Frame.checksumSeed(salt: header.salt)
    } catch let error as SnapshotLoadError {
      close()
      throw error
    } catch let error as SnapshotHeaderDefect {
      close()
      throw .damaged(SnapshotDamage(path: path, offset: 0, reason: error.reason))
    } catch {
      close()
      throw .damaged(SnapshotDamage(path: path, offset: 0, reason: "\(error)"))
    }
  }

  /// Releases the buffer and the descriptor.
  func close() {
    buffer.deallocate()
    fileSystem.close(fd)
  }

  /// The next block, verified. After the `end` block the caller calls ``expectEndOfFile()``.
  mutating func next() throws(SnapshotLoadError) -> Block {
    let offset = position
    guard try load(offset, snapshotBlockHeaderBytes) else {
      throw damaged(offset, "the file ends before its end block (block \(nextIndex) is missing)")
    }
    let fields = SnapshotBlockHeader(window(offset, snapshotBlockHeaderBytes), at: 0)
    guard fields.length <= UInt32(snapshotBlockBytesMax) else {
      throw damaged(offset, "block length \(fields.length) exceeds \(snapshotBlockBytesMax)")
    }
    let blockBytes = snapshotBlockHeaderBytes + Int(fields.length)
    guard try load(offset, blockBytes) else {
      throw damaged(offset, "block \(nextIndex) runs past the end of the file")
    }
    let bytes = window(offset, blockBytes)
    var crc = seed
    crc.update(UnsafeRawBufferPointer(rebasing: bytes[4...]))
    guard crc.value == fields.checksum else {
      throw damaged(
        offset,
        "block \(nextIndex) checksum mismatch (stored \(fields.checksum), computed \(crc.value))")
    }
    guard fields.index == nextIndex else {
      throw damaged(offset, "block index \(fields.index) where \(nextIndex) was expected")
    }
    guard fields.reserved == 0 else { throw damaged(offset, "reserved block bytes are not zero") }
    nextIndex += 1
    position = offset + Int64(blockBytes)
    return Block(
      section: fields.section, offset: offset,
      payload: UnsafeRawBufferPointer(rebasing: bytes[snapshotBlockHeaderBytes...]))
  }

  /// Throws unless the file ends right after the block just read.
  func expectEndOfFile() throws(SnapshotLoadError) {
    guard position == fileBytes else {
      throw damaged(position, "\(fileBytes - position) bytes follow the end block")
    }
  }

  /// An error at `offset` of this file.
  func damaged(_ offset: Int64, _ reason: String) -> SnapshotLoadError {
    .damaged(SnapshotDamage(path: path, offset: offset, reason: reason))
  }

  private func window(_ offset: Int64, _ count: Int) -> UnsafeRawBufferPointer {
    let start = Int(offset - windowStart)
    return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[start..<start + count])
  }

  /// Makes file bytes `offset ..< offset + count` resident; `false` if the file is shorter.
  private mutating func load(_ offset: Int64, _ count: Int) throws(SnapshotLoadError) -> Bool {
    guard offset + Int64(count) <= fileBytes else { return false }
    let windowEnd = windowStart + Int64(windowCount)
    if offset >= windowStart && offset + Int64(count) <= windowEnd { return true }
    // Keep the resident bytes from `offset` on, at the front of the buffer (memmove).
    let keep = offset >= windowStart && offset < windowEnd ? Int(windowEnd - offset) : 0
    if keep > 0 {
      buffer.baseAddress!.copyMemory(
        from: buffer.baseAddress! + Int(offset - windowStart), byteCount: keep)
    }
    windowStart = offset
    windowCount = keep
    let readFrom = offset + Int64(keep)
    let wanted = Int(min(Int64(buffer.count - keep), fileBytes - readFrom))
    let target = UnsafeMutableRawBufferPointer(rebasing: buffer[keep..<keep + wanted])
    let got: Int
    do {
      got = try fileSystem.read(fd, into: target, at: readFrom)
    } catch {
      throw .io(error.withPath(path))
    }
    windowCount += got
    progress?(windowStart + Int64(windowCount), fileBytes)
    return offset + Int64(count) <= windowStart + Int64(windowCount)
  }
}

/// A cursor over one block's payload, for the bulk sections. Inlined varint decoding: the generic
/// `ByteReader` lives in another module and costs a call per field, which is most of the time of
/// loading tens of millions of coupons.
struct PayloadCursor {
  private let base: UnsafeRawPointer?
  private let count: Int
  private(set) var offset = 0

  init(_ payload: UnsafeRawBufferPointer) {
    base = payload.baseAddress
    count = payload.count
  }

  var isAtEnd: Bool { offset == count }

  @inline(__always)
  mutating func varint() throws(SnapshotDecodeError) -> UInt64 {
    var result: UInt64 = 0
    var shift: UInt64 = 0
    while true {
      guard offset < count else { throw SnapshotDecodeError("record cut short") }
      let byte = base.unsafelyUnwrapped.load(fromByteOffset: offset, as: UInt8.self)
      offset += 1
      if shift == 63 && byte > 1 { throw SnapshotDecodeError("varint does not fit in 64 bits") }
      result |= UInt64(byte & 0x7F) << shift
      if byte < 0x80 { return result }
      shift += 7
    }
  }

  /// A varint that must fit in a `UInt32`.
  @inline(__always)
  mutating func u32() throws(SnapshotDecodeError) -> UInt32 {
    let value = try varint()
    guard value <= UInt64(UInt32.max) else { throw SnapshotDecodeError("value \(value) > 2^32") }
    return UInt32(value)
  }

  /// A varint count, bounded so that it can never make a reader allocate or loop absurdly.
  @inline(__always)
  mutating func count(_ what: String) throws(SnapshotDecodeError) -> Int {
    let value = try varint()
    guard value <= UInt64(StringTable.countMax) else {
      throw SnapshotDecodeError("\(what) \(value) out of range")
    }
    return Int(value)
  }

  @inline(__always)
  mutating func byte() throws(SnapshotDecodeError) -> UInt8 {
    guard offset < count else { throw SnapshotDecodeError("record cut short") }
    defer { offset += 1 }
    return base.unsafelyUnwrapped.load(fromByteOffset: offset, as: UInt8.self)
  }

  mutating func u64() throws(SnapshotDecodeError) -> UInt64 {
    guard count - offset >= 8 else { throw SnapshotDecodeError("record cut short") }
    defer { offset += 8 }
    return UInt64(
      littleEndian: base.unsafelyUnwrapped.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
  }

  /// `length` raw bytes, borrowed.
  @inline(__always)
  mutating func bytes(_ length: Int) throws(SnapshotDecodeError) -> UnsafeRawBufferPointer {
    guard length >= 0, count - offset >= length else {
      throw SnapshotDecodeError("record cut short")
    }
    defer { offset += length }
    return UnsafeRawBufferPointer(start: base.map { $0 + offset }, count: length)
  }

  /// A varint length and that many bytes of valid UTF-8.
  mutating func string() throws(SnapshotDecodeError) -> String {
    let length = try count("string length")
    let raw = try bytes(length)
    guard let text = String(validating: raw, as: UTF8.self) else {
      throw SnapshotDecodeError("string is not valid UTF-8")
    }
    return text
  }

  /// A `ByteReader` over the rest of the payload, for records decoded by the event coder.
  func remaining() -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: base.map { $0 + offset }, count: count - offset)
  }

  mutating func skip(_ length: Int) { offset += length }
}

/// Builds a ``StoreState`` from verified blocks, section by section.
struct SnapshotDecoder {
  struct Summary {
    var campaigns = 0
    var coupons = 0
    var users = 0
    var requests = 0
    var locks = 0
    var history = 0
    var staged = 0
    var codeBytes = 0
    var userBytes = 0
  }

  private(set) var state: StoreState
  private var summary: Summary?
  /// The section of the previous block (0 before the first).
  private var section: UInt16 = 0
  private var declaredIssued: [Int] = []
  private var declaredAvailable: [Int] = []
  private var issueCampaign = 0
  private var availableCampaign = 0
  private var codeArena: [UInt8] = []
  private var codeEnds: [Int] = []
  private var userArena: [UInt8] = []
  private var userEnds: [Int] = []
  private var requestCount = 0
  /// Bytes of the file: no count may claim more elements than bytes exist to encode them.
  private let fileBytes: Int

  /// Whether the string tables are indexed on other threads while decoding goes on.
  private let parallel: Bool
  /// The code table being indexed since the codes section ended (with `parallel`).
  private var codeTable: TableBuild?

  init(requestWindow: Int, fileBytes: Int64, parallel: Bool) {
    state = StoreState(requestWindow: requestWindow)
    self.fileBytes = Int(clamping: fileBytes)
    self.parallel = parallel
  }

  /// Decodes one block of `section`.
  mutating func decode(section raw: UInt16, payload: UnsafeRawBufferPointer)
    throws(SnapshotDecodeError)
  {
    guard let kind = SnapshotSection(rawValue: raw), kind != .end else {
      throw SnapshotDecodeError("unknown section \(raw) (written by a newer version?)")
    }
    guard raw >= section else {
      throw SnapshotDecodeError("section \(kind) after section \(section): out of order")
    }
    if raw != section && section == 0 && kind != .summary {
      throw SnapshotDecodeError("the first section is \(kind), not summary")
    }
    if kind == .summary && section == raw {
      throw SnapshotDecodeError("more than one summary block")
    }
    section = raw
    if parallel, codeTable == nil, raw > SnapshotSection.codes.rawValue {
      // The codes are complete: index them while the coupons and users are decoded.
      codeTable = TableBuild(arena: codeArena, ends: codeEnds, onAnotherThread: true)
    }
    var cursor = PayloadCursor(payload)
    while !cursor.isAtEnd {
      switch kind {
      case .summary: try decodeSummary(&cursor)
      case .campaigns: try decodeCampaign(&cursor)
      case .issueOrder: try decodeIssueOrder(&cursor)
      case .available: try decodeAvailable(&cursor)
      case .codes: try Self.decodeStrings(&cursor, into: &codeArena, &codeEnds)
      case .coupons: try decodeCoupons(&cursor)
      case .users: try Self.decodeStrings(&cursor, into: &userArena, &userEnds)
      case .userHeads: try decodeUserHeads(&cursor)
      case .locks: try decodeLock(&cursor)
      case .history: try decodeHistory(&cursor)
      case .staged: try decodeStaged(&cursor)
      case .requests: try decodeRequest(&cursor)
      case .end: preconditionFailure("end is handled by the reader")
      }
    }
  }

  // MARK: Sections

  private mutating func decodeSummary(_ cursor: inout PayloadCursor) throws(SnapshotDecodeError) {
    var summary = Summary()
    summary.campaigns = try cursor.count("campaign count")
    summary.coupons = try cursor.count("coupon count")
    summary.users = try cursor.count("user count")
    summary.requests = try cursor.count("request count")
    summary.locks = try cursor.count("lock count")
    summary.history = try cursor.count("history count")
    summary.staged = try cursor.count("staged upload count")
    summary.codeBytes = try cursor.count("code bytes")
    summary.userBytes = try cursor.count("user bytes")
    guard cursor.isAtEnd else { throw SnapshotDecodeError("trailing bytes in the summary") }
    self.summary = summary
    // Reservations are bounded by the file's size, so a damaged count cannot exhaust memory.
    state.campaigns.reserveCapacity(min(summary.campaigns, fileBytes / 16))
    state.coupons.reserveLarge(min(summary.coupons, fileBytes / 7))
    state.userHeads.reserveLarge(min(summary.users, fileBytes))
    codeEnds.reserveLarge(min(summary.coupons, fileBytes))
    userEnds.reserveLarge(min(summary.users, fileBytes))
    codeArena.reserveLarge(min(summary.codeBytes, fileBytes))
    userArena.reserveLarge(min(summary.userBytes, fileBytes))
  }

  private var counts: Summary {
    get throws(SnapshotDecodeError) {
      guard let summary else { throw SnapshotDecodeError("no summary section") }
      return summary
    }
  }

  private mutating func decodeCampaign(_ cursor: inout PayloadCursor) throws(SnapshotDecodeError) {
    var reader = ByteReader(cursor.remaining())
    let record: CampaignRecord
    do {
      record = try EventCoder.decodeCampaign(&reader)
    } catch {
      throw SnapshotDecodeError("campaign record: \(error)")
    }
    cursor.skip(reader.offset)
    guard state.campaignIndex[record.id] == nil else {
      throw SnapshotDecodeError("campaign \(record.id) appears twice")
    }
    let index = state.applyCampaignCreated(record)
    state.campaigns[Int(index)].stock = try cursor.count("stock")
    for couponState in 0..<4 {
      state.campaigns[Int(index)].countsByState[couponState] = try cursor.count("state count")
    }
    let issued = try cursor.count("issued count")
    let available = try cursor.count("available count")
    guard issued <= fileBytes, available <= fileBytes else {
      throw SnapshotDecodeError("campaign \(record.id) declares more coupons than the file holds")
    }
    state.campaigns[Int(index)].issueOrder.reserveLarge(issued)
    state.campaigns[Int(index)].available.reserveLarge(available)
    declaredIssued.append(issued)
    declaredAvailable.append(available)
  }

  private mutating func decodeIssueOrder(_ cursor: inout PayloadCursor) throws(SnapshotDecodeError)
  {
    var previous: Int64 = 0
    while !cursor.isAtEnd {
      while issueCampaign < declaredIssued.count
        && state.campaigns[issueCampaign].issueOrder.count == declaredIssued[issueCampaign]
      {
        issueCampaign += 1
      }
      guard issueCampaign < declaredIssued.count else {
        throw SnapshotDecodeError("more issue-order entries than the campaigns declare")
      }
      previous = try Self.nextDelta(&cursor, previous)
      state.campaigns[issueCampaign].issueOrder.append(UInt32(previous))
    }
  }

  private mutating func decodeAvailable(_ cursor: inout PayloadCursor) throws(SnapshotDecodeError) {
    var previous: Int64 = 0
    while !cursor.isAtEnd {
      while availableCampaign < declaredAvailable.count
        && state.campaigns[availableCampaign].available.count
          == declaredAvailable[availableCampaign]
      {
        availableCampaign += 1
      }
      guard availableCampaign < declaredAvailable.count else {
        throw SnapshotDecodeError("more pool entries than the campaigns declare")
      }
      previous = try Self.nextDelta(&cursor, previous)
      state.campaigns[availableCampaign].available.append(UInt32(previous))
    }
  }

  /// The value after `previous` in a delta-encoded `UInt32` stream.
  @inline(__always)
  private static func nextDelta(_ cursor: inout PayloadCursor, _ previous: Int64)
    throws(SnapshotDecodeError) -> Int64
  {
    let value = previous &+ EventCoder.unzigzag(try cursor.varint())
    guard value >= 0, value <= Int64(UInt32.max) else {
      throw SnapshotDecodeError("id \(value) out of range")
    }
    return value
  }

  private static func decodeStrings(
    _ cursor: inout PayloadCursor, into arena: inout [UInt8], _ ends: inout [Int]
  ) throws(SnapshotDecodeError) {
    while !cursor.isAtEnd {
      let length = try cursor.count("string length")
      let bytes = try cursor.bytes(length)
      guard isValidUTF8(bytes) else { throw SnapshotDecodeError("string is not valid UTF-8") }
      arena.append(contentsOf: bytes)
      ends.append(arena.count)
    }
  }

  private mutating func decodeCoupons(_ cursor: inout PayloadCursor) throws(SnapshotDecodeError) {
    let counts = try counts
    let campaignCount = UInt32(clamping: state.campaigns.count)
    let userCount = UInt32(clamping: counts.users)
    let couponCount = UInt32(clamping: counts.coupons)
    var previousTime: Int64 = 0
    while !cursor.isAtEnd {
      let campaign = try cursor.u32()
      let owner = try cursor.u32() &- 1
      let next = try cursor.u32() &- 1
      let slot = try cursor.u32() &- 1
      previousTime = previousTime &+ EventCoder.unzigzag(try cursor.varint())
      let redemptions = try cursor.varint()
      guard let couponState = CouponState(rawValue: try cursor.byte()) else {
        throw SnapshotDecodeError("coupon \(state.coupons.count) has an unknown state")
      }
      guard campaign < campaignCount, owner == CouponRecord.none || owner < userCount,
        next == CouponRecord.none || next < couponCount, redemptions <= UInt64(UInt16.max)
      else {
        throw SnapshotDecodeError("coupon \(state.coupons.count) refers out of range")
      }
      state.coupons.append(
        CouponRecord(
          campaign: campaign, owner: owner, nextOfOwner: next, poolSlot: slot,
          issuedAt: previousTime, redemptions: UInt16(redemptions), state: couponState))
    }
  }

  private mutating func decodeUserHeads(_ cursor: inout PayloadCursor) throws(SnapshotDecodeError) {
    var previous: Int64 = 0
    while !cursor.isAtEnd {
      previous = try Self.nextDelta(&cursor, previous)
      state.userHeads.append(UInt32(previous) &- 1)
    }
  }

  private mutating func decodeLock(_ cursor: inout PayloadCursor) throws(SnapshotDecodeError) {
    let coupon = try cursor.u32()
    let expiry = EventCoder.unzigzag(try cursor.varint())
    guard state.lockExpiry.updateValue(expiry, forKey: coupon) == nil else {
      throw SnapshotDecodeError("coupon \(coupon) locked twice")
    }
  }

  private mutating func decodeHistory(_ cursor: inout PayloadCursor) throws(SnapshotDecodeError) {
    let coupon = try cursor.u32()
    let count = try cursor.count("history length")
    var entries = state.history[coupon] ?? []
    entries.reserveCapacity(entries.count + min(count, cursor.remaining().count / 3))
    for _ in 0..<count {
      guard let kind = HistoryEntry.Kind(rawValue: try cursor.byte()) else {
        throw SnapshotDecodeError("history of coupon \(coupon) has an unknown kind")
      }
      let time = EventCoder.unzigzag(try cursor.varint())
      let user = try cursor.u32() &- 1
      entries.append(HistoryEntry(kind: kind, time: time, user: user))
    }
    state.history[coupon] = entries
  }

  private mutating func decodeStaged(_ cursor: inout PayloadCursor) throws(SnapshotDecodeError) {
    let upload = try cursor.varint()
    let campaign = try cursor.u32()
    let count = try cursor.count("staged code count")
    var coupons = state.stagedUploads[upload]?.coupons ?? []
    if let existing = state.stagedUploads[upload], existing.campaign != campaign {
      throw SnapshotDecodeError("staged upload \(upload) names two campaigns")
    }
    for _ in 0..<count { coupons.append(try cursor.u32()) }
    state.stagedUploads[upload] = (campaign, coupons)
  }

  private mutating func decodeRequest(_ cursor: inout PayloadCursor) throws(SnapshotDecodeError) {
    let id = try cursor.string()
    let fingerprint = try cursor.u64()
    let kind = try cursor.byte()
    let value = try cursor.varint()
    let outcome: RememberedOutcome
    switch RememberedKind(rawValue: kind) {
    case .claimed?: outcome = .claimed(UInt32(clamping: value))
    case .campaign?: outcome = .campaign(UInt32(clamping: value))
    case .outcome?:
      guard value <= UInt64(UInt8.max) else { throw SnapshotDecodeError("outcome \(value)") }
      outcome = .outcome(UInt8(value))
    case .upload?: outcome = .upload
    case nil: throw SnapshotDecodeError("request \(id) has an unknown outcome kind \(kind)")
    }
    guard state.requests[id] == nil else { throw SnapshotDecodeError("request \(id) twice") }
    requestCount += 1
    // Through the same FIFO as live requests: a smaller window than the writer's keeps the
    // newest ids, exactly as if the writer had run with it.
    state.remember(RequestTag(id: id, fingerprint: fingerprint), outcome)
  }

  // MARK: Whole-state checks

  /// Checks the decoded state as a whole, builds the indexes, and returns it. With `parallel`,
  /// the code and user tables are indexed on other threads while the checks run.
  mutating func finish(lastSequence: UInt64) throws(SnapshotDecodeError) -> StoreState {
    let counts = try counts
    func expect(_ found: Int, _ declared: Int, _ what: String) throws(SnapshotDecodeError) {
      guard found == declared else {
        throw SnapshotDecodeError("\(found) \(what) where the summary declares \(declared)")
      }
    }
    try expect(state.campaigns.count, counts.campaigns, "campaigns")
    try expect(state.coupons.count, counts.coupons, "coupons")
    try expect(codeEnds.count, counts.coupons, "codes")
    try expect(userEnds.count, counts.users, "users")
    try expect(state.userHeads.count, counts.users, "user heads")
    try expect(codeArena.count, counts.codeBytes, "code bytes")
    try expect(userArena.count, counts.userBytes, "user bytes")
    try expect(requestCount, counts.requests, "request ids")
    try expect(state.lockExpiry.count, counts.locks, "locks")
    try expect(state.history.count, counts.history, "coupons with history")
    try expect(state.stagedUploads.count, counts.staged, "staged uploads")
    for index in state.campaigns.indices {
      try expect(state.campaigns[index].issueOrder.count, declaredIssued[index], "issued coupons")
      try expect(
        state.campaigns[index].available.count, declaredAvailable[index], "pool coupons")
    }
    let codeTable =
      self.codeTable ?? TableBuild(arena: codeArena, ends: codeEnds, onAnotherThread: parallel)
    let userTable = TableBuild(arena: userArena, ends: userEnds, onAnotherThread: parallel)
    codeArena = []
    codeEnds = []
    userArena = []
    userEnds = []
    var failure: SnapshotDecodeError?
    do {
      try checkCoupons()
      try checkUserLists()
      try checkReferences()
    } catch {
      failure = error
    }
    // Joined before anything is thrown, so that no indexing outlives the load.
    let codes = codeTable.wait()
    let users = userTable.wait()
    if let failure { throw failure }
    guard let codes else { throw SnapshotDecodeError("a code occurs twice") }
    guard let users else { throw SnapshotDecodeError("a user id occurs twice") }
    state.codes = codes
    state.users = users
    state.rebuildHeldCounts()
    state.lastSequence = lastSequence
    return state
  }

  /// Every coupon is in exactly one issue list or pool slot of its own campaign, in a state that
  /// matches, and the per-state counts add up.
  private func checkCoupons() throws(SnapshotDecodeError) {
    var listed = [UInt64](repeating: 0, count: (state.coupons.count + 63) / 64)
    var byState = [Int](repeating: 0, count: state.campaigns.count * 4)
    try state.coupons.withUnsafeBufferPointer { coupons throws(SnapshotDecodeError) in
      for (id, coupon) in coupons.enumerated() {
        guard Int(coupon.campaign) < state.campaigns.count else {
          throw SnapshotDecodeError("coupon \(id) names unknown campaign \(coupon.campaign)")
        }
        if coupon.isStaged {
          // Staged by an upload that has not finished (or never will): invisible, counted
          // nowhere, in no list.
          guard coupon.owner == CouponRecord.none, coupon.nextOfOwner == CouponRecord.none else {
            throw SnapshotDecodeError("staged coupon \(id) has an owner")
          }
          listed[id >> 6] |= 1 << UInt64(id & 63)
          continue
        }
        byState[Int(coupon.campaign) * 4 + Int(coupon.state.rawValue)] += 1
        if coupon.owner == CouponRecord.none && coupon.nextOfOwner != CouponRecord.none {
          throw SnapshotDecodeError("coupon \(id) has no owner but a next-of-owner link")
        }
        if coupon.state == .available {
          let pool = state.campaigns[Int(coupon.campaign)].available
          guard coupon.poolSlot < UInt32(pool.count), pool[Int(coupon.poolSlot)] == UInt32(id)
          else {
            throw SnapshotDecodeError("available coupon \(id) is not in its pool slot")
          }
          listed[id >> 6] |= 1 << UInt64(id & 63)
        } else if coupon.poolSlot != CouponRecord.none {
          throw SnapshotDecodeError("coupon \(id) is \(coupon.state) but holds a pool slot")
        }
      }
      for (index, campaign) in state.campaigns.enumerated() {
        for id in campaign.issueOrder {
          guard id < UInt32(coupons.count), coupons[Int(id)].campaign == UInt32(index),
            coupons[Int(id)].state != .available
          else {
            throw SnapshotDecodeError("campaign \(index) lists coupon \(id) as issued")
          }
          let bit: UInt64 = 1 << UInt64(id & 63)
          guard listed[Int(id >> 6)] & bit == 0 else {
            throw SnapshotDecodeError("coupon \(id) is listed twice")
          }
          listed[Int(id >> 6)] |= bit
        }
        for id in campaign.available where id >= UInt32(coupons.count) {
          throw SnapshotDecodeError("campaign \(index) pools unknown coupon \(id)")
        }
        let declared = campaign.countsByState
        for couponState in 0..<4 where declared[couponState] != byState[index * 4 + couponState] {
          throw SnapshotDecodeError("campaign \(campaign.record.id) state counts disagree")
        }
        guard campaign.issued <= campaign.stock else {
          throw SnapshotDecodeError("campaign \(campaign.record.id) is oversold")
        }
        guard campaign.isPool || campaign.available.isEmpty else {
          throw SnapshotDecodeError("generated campaign \(campaign.record.id) has a pool")
        }
      }
    }
    let listedCount = listed.reduce(0) { $0 + $1.nonzeroBitCount }
    guard listedCount == state.coupons.count else {
      throw SnapshotDecodeError(
        "\(state.coupons.count - listedCount) coupons are in no issue list or pool")
    }
  }

  /// Each user's coupon list holds exactly the coupons the user owns and ends: a list that loops
  /// would make every later "how many does this user hold" walk forever.
  private func checkUserLists() throws(SnapshotDecodeError) {
    var owned = [UInt32](repeating: 0, count: state.userHeads.count)
    for coupon in state.coupons where coupon.owner != CouponRecord.none {
      owned[Int(coupon.owner)] += 1
    }
    try state.coupons.withUnsafeBufferPointer { coupons throws(SnapshotDecodeError) in
      for (user, head) in state.userHeads.enumerated() {
        var coupon = head
        var steps: UInt32 = 0
        while coupon != CouponRecord.none {
          guard coupon < UInt32(coupons.count), coupons[Int(coupon)].owner == UInt32(user),
            steps < owned[user]
          else {
            throw SnapshotDecodeError("the coupon list of user \(user) is inconsistent")
          }
          steps += 1
          coupon = coupons[Int(coupon)].nextOfOwner
        }
        guard steps == owned[user] else {
          throw SnapshotDecodeError("the coupon list of user \(user) misses coupons")
        }
      }
    }
  }

  /// Ids kept in the small maps point at things that exist.
  private func checkReferences() throws(SnapshotDecodeError) {
    let couponCount = UInt32(clamping: state.coupons.count)
    let userCount = UInt32(clamping: state.userHeads.count)
    for coupon in state.lockExpiry.keys where coupon >= couponCount {
      throw SnapshotDecodeError("lock of unknown coupon \(coupon)")
    }
    for (coupon, entries) in state.history {
      guard coupon < couponCount else { throw SnapshotDecodeError("history of coupon \(coupon)") }
      for entry in entries where entry.user != CouponRecord.none && entry.user >= userCount {
        throw SnapshotDecodeError("history of coupon \(coupon) names unknown user \(entry.user)")
      }
    }
    for (upload, staged) in state.stagedUploads
    where staged.campaign >= UInt32(state.campaigns.count)
      || !state.campaigns[Int(staged.campaign)].isPool
    {
      throw SnapshotDecodeError("staged upload \(upload) names campaign \(staged.campaign)")
    }
    for (upload, staged) in state.stagedUploads {
      // A code the upload skipped is staged as `none`.
      for coupon in staged.coupons
      where coupon != CouponRecord.none
        && (coupon >= couponCount || state.coupons[Int(coupon)].campaign != staged.campaign)
      {
        throw SnapshotDecodeError("staged upload \(upload) names coupon \(coupon)")
      }
    }
    for (id, remembered) in state.requests {
      switch remembered.outcome {
      case .claimed(let coupon) where coupon >= couponCount,
        .campaign(let coupon) where coupon >= UInt32(state.campaigns.count):
        throw SnapshotDecodeError("request \(id) remembers an unknown coupon or campaign")
      default: break
      }
    }
  }
}

extension StoreState {
  /// Loads and checks the snapshot at `path`. `progress` gets bytes read and the file's size.
  /// `parallel` lets the load use a second core (when opening; not in the background).
  static func loadSnapshot(
    path: String, fileSystem: any FileSystem, requestWindow: Int, parallel: Bool = false,
    progress: ((Int64, Int64) -> Void)? = nil
  ) throws(SnapshotLoadError) -> StoreState {
    var reader = try SnapshotBlockReader(fileSystem: fileSystem, path: path, progress: progress)
    defer { reader.close() }
    var decoder = SnapshotDecoder(
      requestWindow: requestWindow, fileBytes: reader.fileBytes, parallel: parallel)
    var blocksBefore: UInt32 = 0
    var payloadBefore: UInt64 = 0
    while true {
      let block = try reader.next()
      if block.section == SnapshotSection.end.rawValue {
        var cursor = PayloadCursor(block.payload)
        let blocks = try? cursor.payloadU32()
        let bytes = try? cursor.u64()
        guard blocks == blocksBefore, bytes == payloadBefore, cursor.isAtEnd else {
          throw reader.damaged(block.offset, "the end block does not match the blocks before it")
        }
        try reader.expectEndOfFile()
        break
      }
      do {
        try decoder.decode(section: block.section, payload: block.payload)
      } catch {
        let name = SnapshotSection(rawValue: block.section).map { "\($0)" } ?? "\(block.section)"
        throw reader.damaged(
          block.offset, "block \(blocksBefore) (section \(name)): \(error.reason)")
      }
      blocksBefore += 1
      payloadBefore += UInt64(block.payload.count)
    }
    do {
      return try decoder.finish(lastSequence: reader.header.lastSequence)
    } catch {
      throw reader.damaged(reader.position, "inconsistent state: \(error.reason)")
    }
  }
}

/// A string table being indexed, on another thread or (without `onAnotherThread`) right away.
///
/// `@unchecked Sendable`: `table` is written once, by the worker, before it signals `done`, and
/// read only after ``wait()`` waited for that signal.
final class TableBuild: @unchecked Sendable {
  private var table: StringTable?
  private let done = DispatchSemaphore(value: 0)

  init(arena: [UInt8], ends: [Int], onAnotherThread: Bool) {
    guard onAnotherThread else {
      table = StringTable(arena: arena, ends: ends)
      done.signal()
      return
    }
    DispatchQueue.global().async { [self] in
      table = StringTable(arena: arena, ends: ends)
      done.signal()
    }
  }

  /// The table, or `nil` if a string occurs twice. Call once.
  func wait() -> StringTable? {
    done.wait()
    return table
  }
}

extension PayloadCursor {
  /// A fixed-width little-endian `UInt32`.
  mutating func payloadU32() throws(SnapshotDecodeError) -> UInt32 {
    let raw = try bytes(4)
    return UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self))
  }
}

extension Array {
  /// Reserves room for `capacity` elements and, for a large reservation, asks for transparent
  /// huge pages before any of it is touched: filling hundreds of megabytes page by page costs
  /// one page fault per 4 KiB (most of the system time of loading a large snapshot).
  mutating func reserveLarge(_ capacity: Int) {
    reserveCapacity(capacity)
    guard capacity * MemoryLayout<Element>.stride >= 4 << 20 else { return }
    withUnsafeMutableBufferPointer { buffer in
      guard let base = buffer.baseAddress else { return }
      adviseHugePages(
        UnsafeMutableRawBufferPointer(
          start: UnsafeMutableRawPointer(base + buffer.count),
          count: (capacity - buffer.count) * MemoryLayout<Element>.stride))
    }
  }
}
