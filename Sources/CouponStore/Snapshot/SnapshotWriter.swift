// Writing a snapshot file: the state's sections, cut into checksummed blocks, streamed to a
// temporary file, synced, renamed, and the directory synced (the layout is in
// SnapshotFormat.swift and FORMAT.md).
//
// This runs on the snapshotter thread, from the snapshotter's own copy of the state, never on the
// writer thread. Blocks are encoded into one buffer that is handed to the kernel every 8 MiB, so
// memory stays small however large the state is.

import CouponLog

/// Encodes records into checksummed blocks and hands them, 8 MiB at a time, to a sink (the
/// snapshot file, or a digest when `verify` compares two states).
struct SnapshotBlockWriter {
  /// The buffer is handed to the sink once it holds this much.
  static let chunkBytes = 8 << 20
  /// A block is closed before a record could push its payload past ``snapshotBlockBytesMax``.
  static let blockCloseBytes = snapshotBlockBytesMax - snapshotRecordBytesMax

  let seed: CRC32C
  /// Receives the encoded blocks in order, a chunk at a time.
  let sink: (UnsafeRawBufferPointer) throws -> Void

  private var buffer = ByteWriter(capacity: chunkBytes + snapshotBlockBytesMax)
  /// The offset in `buffer` of the open block's header, if a block is open.
  private var blockStart: Int?
  private var section: SnapshotSection?
  /// Blocks closed so far, and their payload bytes.
  private(set) var blockCount: UInt32 = 0
  private(set) var payloadBytes: UInt64 = 0

  init(salt: UInt64, sink: @escaping (UnsafeRawBufferPointer) throws -> Void) {
    self.seed = Frame.checksumSeed(salt: salt)
    self.sink = sink
  }

  /// Appends one record of `section`. `encode` appends it to the writer it is given; its second
  /// argument says whether the record is the first of its block (where delta encodings restart).
  /// A record must not exceed ``snapshotRecordBytesMax`` (a programmer error: split it).
  mutating func record(
    _ section: SnapshotSection, _ encode: (inout ByteWriter, _ blockStart: Bool) -> Void
  ) throws {
    if let blockStart, self.section != section || buffer.count - blockStart >= Self.blockCloseBytes
    {
      try closeBlock()
    }
    precondition(
      self.section.map { $0.rawValue <= section.rawValue } ?? true,
      "snapshot sections must be written in increasing order")
    if blockStart == nil { openBlock(section) }
    let before = buffer.count
    encode(&buffer, before == blockStart! + snapshotBlockHeaderBytes)
    precondition(
      buffer.count - before <= snapshotRecordBytesMax,
      "snapshot record of \(buffer.count - before) bytes in \(section); split it")
  }

  /// Closes the last block, appends the end block and writes everything out.
  mutating func finish() throws {
    if blockStart != nil { try closeBlock() }
    let blocksBefore = blockCount
    let bytesBefore = payloadBytes
    openBlock(.end)
    buffer.append(blocksBefore)
    buffer.append(bytesBefore)
    try closeBlock()
    try writeBuffer()
  }

  private mutating func openBlock(_ section: SnapshotSection) {
    self.section = section
    blockStart = buffer.count
    buffer.append(UInt32(0))  // checksum, patched when the block closes
    buffer.append(UInt32(0))  // length, patched when the block closes
    buffer.append(blockCount)
    buffer.append(section.rawValue)
    buffer.append(UInt16(0))
  }

  private mutating func closeBlock() throws {
    guard let start = blockStart else { return }
    let length = buffer.count - start - snapshotBlockHeaderBytes
    precondition(length <= snapshotBlockBytesMax, "snapshot block of \(length) bytes")
    buffer.patchUInt32(UInt32(length), at: start + 4)
    let checksum = buffer.bytes.withUnsafeBytes { bytes in
      var crc = seed
      crc.update(UnsafeRawBufferPointer(rebasing: bytes[(start + 4)..<buffer.count]))
      return crc.value
    }
    buffer.patchUInt32(checksum, at: start)
    blockStart = nil
    blockCount += 1
    payloadBytes += UInt64(length)
    if buffer.count >= Self.chunkBytes { try writeBuffer() }
  }

  private mutating func writeBuffer() throws {
    guard buffer.count > 0 else { return }
    try buffer.bytes.withUnsafeBytes { try sink($0) }
    buffer.removeAll(keepingCapacity: true)
  }
}

/// A snapshot was abandoned because the store is closing.
struct SnapshotCancelled: Error {}

/// A snapshot file that was written and made durable.
struct WrittenSnapshot: Sendable {
  var path: String
  var sequence: UInt64
  var bytes: Int64
}

extension StoreState {
  /// Writes this state as the snapshot for `lastSequence` in `directory`: to
  /// `snapshot-<seq>.tmp`, `fdatasync`, rename to `snapshot-<seq>.snap`, directory `fsync`.
  ///
  /// On any failure before the rename the temporary file is removed (best effort) and nothing
  /// else has changed. If only the final directory sync fails, the renamed file stays: its bytes
  /// are durable, and whether its name survives a crash does not matter, because nothing is
  /// deleted on the strength of a snapshot whose directory sync did not succeed.
  ///
  /// Durability point: the snapshot is durable when this returns (file synced before the rename,
  /// directory synced after it).
  func writeSnapshot(
    directory: String, fileSystem: any FileSystem, createdAtMillis: Int64,
    isCancelled: @escaping () -> Bool = { false }
  ) throws -> WrittenSnapshot {
    let temporaryPath = joinPath(directory, SnapshotFile.temporaryName(sequence: lastSequence))
    let finalPath = joinPath(directory, SnapshotFile.name(sequence: lastSequence))
    let fd: FileDescriptor
    do {
      fd = try fileSystem.openFile(temporaryPath, options: [.readWrite, .create, .truncate])
    } catch {
      throw error.withPath(temporaryPath)
    }
    let bytes: Int64
    do {
      defer { fileSystem.close(fd) }
      let header = SnapshotHeader(
        salt: UInt64.random(in: .min ... .max), lastSequence: lastSequence,
        createdAtMillis: createdAtMillis)
      var failure: SystemCallError?
      header.encoded().withUnsafeBytes { raw in
        do throws(SystemCallError) {
          try fileSystem.write(fd, raw, at: 0)
        } catch {
          failure = error.withPath(temporaryPath)
        }
      }
      if let failure { throw failure }
      var offset = Int64(snapshotHeaderBytes)
      var unsynced: Int64 = 0
      var blocks = SnapshotBlockWriter(salt: header.salt) { chunk in
        if isCancelled() { throw SnapshotCancelled() }
        do throws(SystemCallError) {
          try fileSystem.write(fd, chunk, at: offset)
          unsynced += Int64(chunk.count)
          if unsynced >= Self.snapshotSyncBytes {
            // Not a durability point: it only keeps the dirty pages few (see snapshotSyncBytes).
            try fileSystem.syncData(fd)
            unsynced = 0
          }
        } catch {
          throw error.withPath(temporaryPath)
        }
        offset += Int64(chunk.count)
      }
      try writeSections(to: &blocks)
      try blocks.finish()
      bytes = offset
      // Durability point: the snapshot's bytes are durable once this returns; the file is renamed
      // to its final name only after it.
      do { try fileSystem.syncData(fd) } catch { throw error.withPath(temporaryPath) }
    } catch {
      try? fileSystem.removeFile(temporaryPath)
      throw error
    }
    do {
      try fileSystem.rename(temporaryPath, to: finalPath)
    } catch {
      try? fileSystem.removeFile(temporaryPath)
      throw error
    }
    // Durability point: the name is durable once the directory is synced; only then may older
    // snapshots and covered segments be deleted.
    try fileSystem.syncDirectory(directory)
    return WrittenSnapshot(path: finalPath, sequence: lastSequence, bytes: bytes)
  }

  /// A 64-bit digest of the state's snapshot encoding: two states are equal exactly when their
  /// digests are (up to checksum collisions). For `verify`, which compares the newest snapshot
  /// with the state its base and the log rebuild.
  func snapshotDigest() throws -> UInt64 {
    var low = CRC32C()
    var high = Frame.checksumSeed(salt: 0x5EED)
    var blocks = SnapshotBlockWriter(salt: 0) { chunk in
      low.update(chunk)
      high.update(chunk)
    }
    try writeSections(to: &blocks)
    try blocks.finish()
    return UInt64(high.value) << 32 | UInt64(low.value)
  }

  /// A snapshot file is synced every this many bytes while it is written, not only at the end.
  /// Hundreds of megabytes of dirty pages flushed at once would queue in front of the log's own
  /// `fdatasync`s (and, on ext4, a log sync's journal commit waits for the newly allocated blocks
  /// of other files), stalling claims for as long; in 32 MiB steps each stall stays short.
  static let snapshotSyncBytes: Int64 = 32 << 20

  /// Encodes every section, in section order (the encodings are listed in SnapshotFormat.swift).
  func writeSections(to out: inout SnapshotBlockWriter) throws {
    // The FIFO's live part holds each remembered id once; counted, not assumed, so that the
    // summary always matches the records written below.
    let requestCount = requestOrder[requestOrderHead...].reduce(0) {
      $0 + (requests[$1] == nil ? 0 : 1)
    }
    try out.record(.summary) { writer, _ in
      for count in [
        campaigns.count, coupons.count, users.count, requestCount, lockExpiry.count,
        history.count, stagedUploads.count, codes.byteCount, users.byteCount,
      ] {
        writer.appendVarint(UInt64(count))
      }
    }
    for campaign in campaigns {
      try out.record(.campaigns) { writer, _ in
        EventCoder.encodeCampaign(campaign.record, into: &writer)
        writer.appendVarint(UInt64(campaign.stock))
        for count in campaign.countsByState { writer.appendVarint(UInt64(count)) }
        writer.appendVarint(UInt64(campaign.issueOrder.count))
        writer.appendVarint(UInt64(campaign.available.count))
      }
    }
    try Self.writeDeltas(campaigns.lazy.map(\.issueOrder), section: .issueOrder, to: &out)
    try Self.writeDeltas(campaigns.lazy.map(\.available), section: .available, to: &out)
    try Self.writeStrings(codes, section: .codes, to: &out)
    try writeCoupons(to: &out)
    try Self.writeStrings(users, section: .users, to: &out)
    try Self.writeDeltas(
      CollectionOfOne(userHeads.map { $0 &+ 1 }), section: .userHeads, to: &out)
    for coupon in lockExpiry.keys.sorted() {
      try out.record(.locks) { writer, _ in
        writer.appendVarint(UInt64(coupon))
        writer.appendVarint(EventCoder.zigzag(lockExpiry[coupon]!))
      }
    }
    for coupon in history.keys.sorted() {
      let entries = history[coupon]!
      for start in stride(from: 0, to: max(entries.count, 1), by: Self.historyEntriesPerRecord) {
        let chunk = entries[start..<min(start + Self.historyEntriesPerRecord, entries.count)]
        try out.record(.history) { writer, _ in
          writer.appendVarint(UInt64(coupon))
          writer.appendVarint(UInt64(chunk.count))
          for entry in chunk {
            writer.append(entry.kind.rawValue)
            writer.appendVarint(EventCoder.zigzag(entry.time))
            writer.appendVarint(UInt64(entry.user &+ 1))
          }
        }
      }
    }
    for upload in stagedUploads.keys.sorted() {
      let staged = stagedUploads[upload]!
      let coupons = staged.coupons
      for start in stride(from: 0, to: max(coupons.count, 1), by: Self.stagedCodesPerRecord) {
        let chunk = coupons[start..<min(start + Self.stagedCodesPerRecord, coupons.count)]
        try out.record(.staged) { writer, _ in
          writer.appendVarint(upload)
          writer.appendVarint(UInt64(staged.campaign))
          writer.appendVarint(UInt64(chunk.count))
          for coupon in chunk { writer.appendVarint(UInt64(coupon)) }
        }
      }
    }
    for id in requestOrder[requestOrderHead...] {
      guard let remembered = requests[id] else { continue }
      try out.record(.requests) { writer, _ in
        writer.appendString(id)
        writer.append(remembered.fingerprint)
        switch remembered.outcome {
        case .claimed(let coupon):
          writer.append(RememberedKind.claimed.rawValue)
          writer.appendVarint(UInt64(coupon))
        case .campaign(let index):
          writer.append(RememberedKind.campaign.rawValue)
          writer.appendVarint(UInt64(index))
        case .outcome(let code):
          writer.append(RememberedKind.outcome.rawValue)
          writer.appendVarint(UInt64(code))
        case .upload:
          writer.append(RememberedKind.upload.rawValue)
          writer.appendVarint(0)
        }
      }
    }
  }

  /// History entries per record: 2,048 × at most 16 bytes stays under the record limit.
  static let historyEntriesPerRecord = 2_048
  /// Staged codes per record: 200 × at most 258 bytes stays under the record limit.
  static let stagedCodesPerRecord = 200
  /// Elements of an id array or coupons per record call (records of flat arrays are single
  /// elements on disk; grouping them only saves calls).
  static let elementsPerRecord = 1_024

  /// Arrays of `UInt32`, concatenated, as zig-zag deltas; the base runs on from one array to
  /// the next and restarts at 0 in every block.
  static func writeDeltas(
    _ arrays: some Sequence<[UInt32]>, section: SnapshotSection, to out: inout SnapshotBlockWriter
  ) throws {
    var previous: Int64 = 0
    for array in arrays {
      try array.withUnsafeBufferPointer { values in
        for start in stride(from: 0, to: values.count, by: elementsPerRecord) {
          try out.record(section) { writer, blockStart in
            if blockStart { previous = 0 }
            for value in values[start..<min(start + elementsPerRecord, values.count)] {
              writer.appendVarint(EventCoder.zigzag(Int64(value) - previous))
              previous = Int64(value)
            }
          }
        }
      }
    }
  }

  /// Every string of a table, in id order: varint length, bytes.
  static func writeStrings(
    _ table: StringTable, section: SnapshotSection, to out: inout SnapshotBlockWriter
  ) throws {
    try table.withStorage { arena, ends in
      var id = 0
      while id < ends.count {
        try out.record(section) { writer, _ in
          var bytes = 0
          while id < ends.count && bytes < snapshotRecordBytesMax / 2 {
            let start = id == 0 ? 0 : ends[id - 1]
            writer.appendVarint(UInt64(ends[id] - start))
            writer.appendBytes(UnsafeRawBufferPointer(rebasing: arena[start..<ends[id]]))
            bytes += ends[id] - start + 2
            id += 1
          }
        }
      }
    }
  }

  private func writeCoupons(to out: inout SnapshotBlockWriter) throws {
    var previousTime: Int64 = 0
    try coupons.withUnsafeBufferPointer { coupons in
      for start in stride(from: 0, to: coupons.count, by: Self.elementsPerRecord) {
        try out.record(.coupons) { writer, blockStart in
          if blockStart { previousTime = 0 }
          for coupon in coupons[start..<min(start + Self.elementsPerRecord, coupons.count)] {
            writer.appendVarint(UInt64(coupon.campaign))
            writer.appendVarint(UInt64(coupon.owner &+ 1))
            writer.appendVarint(UInt64(coupon.nextOfOwner &+ 1))
            writer.appendVarint(UInt64(coupon.poolSlot &+ 1))
            writer.appendVarint(EventCoder.zigzag(coupon.issuedAt &- previousTime))
            previousTime = coupon.issuedAt
            writer.appendVarint(UInt64(coupon.redemptions))
            writer.append(coupon.state.rawValue)
          }
        }
      }
    }
  }
}

/// How a remembered request outcome is tagged in the `requests` section. Never renumber.
enum RememberedKind: UInt8 {
  case claimed = 0
  case campaign = 1
  case outcome = 2
  case upload = 3
}
