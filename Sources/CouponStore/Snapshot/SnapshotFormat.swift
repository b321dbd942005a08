// Snapshots: the whole business state as of one log sequence number, in one file.
//
// A snapshot lets recovery start from the state at sequence S instead of replaying the log from
// sequence 1; once two snapshots cover a log segment, the segment is deleted. So opening time and
// disk use follow the live state, not the history.
//
// File name: `snapshot-<S as 20 zero-padded decimal digits>.snap`, written first as
// `snapshot-<S, 20 digits>.tmp`. All integers are little-endian; checksums are CRC-32C.
//
// Header (48 bytes, at offset 0):
//
//     offset  width  field
//          0      8  magic "CPNSNP\r\n"
//          8      4  formatVersion   u32, = 1
//         12      4  reserved        u32, = 0
//         16      8  salt            u64, random per file
//         24      8  lastSequence    u64, S: the state holds every log record <= S; equals the name
//         32      8  createdAtMillis i64, wall clock when written (informational)
//         40      4  reserved        u32, = 0
//         44      4  crc             CRC-32C of bytes 0 ..< 44
//
// Blocks, back to back from offset 48 to the end of the file, each a 16-byte header and a payload:
//
//     offset  width  field
//          0      4  crc       CRC-32C of the salt (8 bytes LE), then block bytes 4 ..< 16 + n
//          4      4  length    n, u32, 0 ... blockBytesMax (1 MiB)
//          8      4  index     u32: 0 for the first block, then +1 each
//         12      2  section   u16 (see `SnapshotSection`)
//         14      2  reserved  = 0
//         16      n  payload   whole records of the section (a record never spans two blocks)
//
// Why per-block checksums rather than one for the file: a flipped bit is located (file, offset,
// block, section), and the reader verifies each block as it streams through it, with a buffer of
// a few megabytes however large the state. The salt ties every block to its file (a block copied
// from another snapshot never verifies), the index catches a dropped, repeated or reordered
// block, and the last block (section `end`) states how many blocks and payload bytes came before
// it, so a file cut short anywhere is detected. Nothing may follow the end block.
//
// Sections appear in increasing id order, each as one run of consecutive blocks; an empty section
// may be left out. The payload encodings (varints are LEB128, signed values zig-zag, "+1" values
// store `UInt32.max` as 0, "delta" values are zig-zag differences from the previous value of the
// same kind in the same block, starting from 0 in every block, so blocks decode independently):
//
//   1 summary      one record: campaign, coupon, user, request, lock, history and staged-upload
//                  counts, and the code and user byte totals (for preallocation and a final check)
//   2 campaigns    per campaign, in index order: the campaign record (as in the campaignCreated
//                  event), stock, the four per-state counts, issued count, available count
//   3 issueOrder   every campaign's issue order, concatenated in campaign order: delta coupon ids
//   4 available    every campaign's available pool, concatenated likewise: delta coupon ids
//   5 codes        per coupon id: varint length, UTF-8 bytes
//   6 coupons      per coupon id: campaign, owner+1, nextOfOwner+1, poolSlot+1, delta issuedAt,
//                  redemptions, state (u8)
//   7 users        per user id: varint length, UTF-8 bytes
//   8 userHeads    per user id: delta (head+1)
//   9 locks        per locked coupon, by coupon id: coupon, expiry (zig-zag)
//  10 history      per coupon with history, by coupon id: coupon, entry count, then per entry kind
//                  (u8), time (zig-zag), user+1; a long trail is split into several records of the
//                  same coupon, which the reader concatenates
//  11 staged       uploads not yet final, by upload id: upload, campaign, coupon count, coupon ids; a large
//                  upload is split into several records of the same upload
//  12 requests     remembered request ids, oldest first: id, fingerprint (u64), outcome kind (u8),
//                  outcome value
//  0xFFFF end      blocks before it (u32), payload bytes before it (u64)
//
// Adding state later: give it a new section id (between 12 and 0xFFFF). A reader treats a missing
// section as empty, so snapshots written before the section existed stay readable; a reader that
// meets a section id it does not know refuses the file (it was written by a newer version).
// `formatVersion` changes only when an existing section's encoding changes.
//
// Recovery rules (CouponStore+Recovery.swift, SnapshotRecovery.swift):
// 1. Snapshots are tried newest first (by the sequence in their name). One that fails any check
//    (header, a block's checksum or index, a record that does not decode, a cross-reference out of
//    range, a missing end block) is skipped and reported, and the next older one is tried.
// 2. The first valid snapshot, at S, is loaded; the log is replayed after S. Segments wholly at
//    or below S (kept for the older snapshot) are not read, and may be missing; the log must
//    reach back to S + 1, else recovery refuses to open with a corruption error naming the
//    snapshot it needed a log for.
// 3. With no valid snapshot, the whole log is replayed if it still starts at sequence 1; if it
//    does not (segments were deleted because snapshots covered them), opening fails with a
//    corruption error naming the newest snapshot file and where it is damaged.
// 4. `*.tmp` files are what a crash while writing leaves; they are never read, and a writable
//    open deletes them.

import CouponLog

/// Bytes of a snapshot file's header.
let snapshotHeaderBytes = 48
/// Bytes of a block header.
let snapshotBlockHeaderBytes = 16
/// Largest block payload (1 MiB).
let snapshotBlockBytesMax = 1 << 20
/// Largest record the encoder puts in a block. A block is closed before a record could push it
/// past ``snapshotBlockBytesMax``; records that can grow without bound (history, staged uploads)
/// are split below this.
let snapshotRecordBytesMax = 64 << 10

/// The sections of a snapshot, in file order. Never renumber: these are on disk.
enum SnapshotSection: UInt16, CaseIterable, Sendable {
  case summary = 1
  case campaigns = 2
  case issueOrder = 3
  case available = 4
  case codes = 5
  case coupons = 6
  case users = 7
  case userHeads = 8
  case locks = 9
  case history = 10
  case staged = 11
  case requests = 12
  case end = 0xFFFF
}

/// Names of snapshot files.
enum SnapshotFile {
  static let prefix = "snapshot-"
  static let suffix = ".snap"
  static let temporarySuffix = ".tmp"

  /// `snapshot-<sequence, 20 digits>.snap`.
  static func name(sequence: UInt64) -> String {
    SequenceFileName.make(prefix: prefix, sequence, suffix: suffix)
  }

  /// `snapshot-<sequence, 20 digits>.tmp`: where the file is written before it is renamed.
  static func temporaryName(sequence: UInt64) -> String {
    SequenceFileName.make(prefix: prefix, sequence, suffix: temporarySuffix)
  }

  /// The sequence a finished snapshot's name stands for, or `nil` if `name` is not exactly one.
  static func sequence(fromName name: String) -> UInt64? {
    SequenceFileName.sequence(in: name, prefix: prefix, suffix: suffix)
  }

  /// Whether `name` is a temporary snapshot file (a crash while writing leaves one).
  static func isTemporary(_ name: String) -> Bool {
    SequenceFileName.sequence(in: name, prefix: prefix, suffix: temporarySuffix) != nil
  }
}

/// Why a snapshot file cannot be used: where and what. Recovery skips such a file and tries an
/// older one.
struct SnapshotDamage: Error, Sendable, CustomStringConvertible {
  var path: String
  /// The file offset of the header or block where the damage is (0 for the header).
  var offset: Int64
  var reason: String

  var description: String { "snapshot \(path) is damaged at offset \(offset): \(reason)" }
}

/// The header at the start of every snapshot file.
struct SnapshotHeader: Sendable, Equatable {
  static let magic: [UInt8] = Array("CPNSNP\r\n".utf8)
  static let currentFormatVersion: UInt32 = 1

  var formatVersion: UInt32 = SnapshotHeader.currentFormatVersion
  var salt: UInt64
  var lastSequence: UInt64
  var createdAtMillis: Int64

  init(salt: UInt64, lastSequence: UInt64, createdAtMillis: Int64) {
    self.salt = salt
    self.lastSequence = lastSequence
    self.createdAtMillis = createdAtMillis
  }

  /// The 48 encoded bytes, checksum included.
  func encoded() -> [UInt8] {
    var writer = ByteWriter(capacity: snapshotHeaderBytes)
    writer.appendBytes(SnapshotHeader.magic)
    writer.append(formatVersion)
    writer.append(UInt32(0))
    writer.append(salt)
    writer.append(lastSequence)
    writer.append(createdAtMillis)
    writer.append(UInt32(0))
    writer.append(CRC32C.checksum(writer.bytes))
    assert(writer.count == snapshotHeaderBytes)
    return writer.bytes
  }

  /// Decodes and verifies a header; the error says what is wrong.
  init(decoding bytes: UnsafeRawBufferPointer) throws(SnapshotHeaderDefect) {
    guard bytes.count >= snapshotHeaderBytes else { throw .init("file is shorter than a header") }
    guard bytes.prefix(8).elementsEqual(SnapshotHeader.magic) else {
      throw .init("the file does not start with the magic CPNSNP\\r\\n")
    }
    func field<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
      T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    let stored = field(44, UInt32.self)
    let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<44]))
    guard stored == computed else {
      throw .init("header checksum mismatch (stored \(stored), computed \(computed))")
    }
    formatVersion = field(8, UInt32.self)
    guard formatVersion == SnapshotHeader.currentFormatVersion else {
      throw .init("unsupported snapshot format version \(formatVersion)")
    }
    guard field(12, UInt32.self) == 0, field(40, UInt32.self) == 0 else {
      throw .init("reserved header bytes are not zero")
    }
    salt = field(16, UInt64.self)
    lastSequence = field(24, UInt64.self)
    createdAtMillis = field(32, Int64.self)
  }
}

/// What is wrong with a snapshot header.
struct SnapshotHeaderDefect: Error {
  var reason: String
  init(_ reason: String) { self.reason = reason }
}

/// The fields of a block header, before verification.
struct SnapshotBlockHeader {
  var checksum: UInt32
  var length: UInt32
  var index: UInt32
  var section: UInt16
  var reserved: UInt16

  init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
    func field<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
      T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + at, as: T.self))
    }
    checksum = field(0, UInt32.self)
    length = field(4, UInt32.self)
    index = field(8, UInt32.self)
    section = field(12, UInt16.self)
    reserved = field(14, UInt16.self)
  }
}
