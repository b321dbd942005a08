// CRC-32C (Castagnoli), in software, slicing-by-8.
//
// CRC-32C and not CRC-32 (zlib) because its polynomial detects more error patterns at the frame
// sizes a log writes, and because it is the checksum of iSCSI, ext4, Btrfs and LevelDB, so its
// test vectors are everywhere. The reflected polynomial is 0x82F63B78; the register starts at
// all ones and the result is complemented (so the CRC of no bytes is 0, and of "123456789" is
// 0xE3069283).
//
// Slicing-by-8 (Intel, 2006) folds eight input bytes per step through eight 256-entry tables
// instead of one byte through one table: the eight lookups are independent, so the CPU overlaps
// them. Hardware `crc32` instructions would be faster still, but they need a C shim or intrinsics
// the package does not have; this runs at well over a gigabyte per second, far above the disk.
// The eight tables (8 KiB) are built once, on first use, and never written again.

/// A running CRC-32C (Castagnoli) checksum.
///
/// ```swift
/// var crc = CRC32C()
/// crc.update(header)
/// crc.update(payload)
/// let checksum = crc.value
/// ```
/// A `CRC32C` value can be copied to checksum several messages that share a prefix (the log
/// seeds one with each segment's salt and copies it for every frame).
public struct CRC32C: Sendable, Hashable {
  /// The register, kept inverted between updates (initially all ones).
  @usableFromInline var state: UInt32

  /// Starts a checksum of no bytes.
  public init() {
    state = 0xFFFF_FFFF
  }

  /// The checksum of every byte given so far.
  public var value: UInt32 { ~state }

  /// Adds `bytes` to the checksum.
  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    state = crc32cAdvance(state, bytes)
  }

  /// Adds `bytes` to the checksum.
  public mutating func update(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { update($0) }
  }

  /// Adds the eight little-endian bytes of `value` to the checksum.
  public mutating func update(littleEndian value: UInt64) {
    withUnsafeBytes(of: value.littleEndian) { update($0) }
  }

  /// The CRC-32C of `bytes`.
  public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var crc = CRC32C()
    crc.update(bytes)
    return crc.value
  }

  /// The CRC-32C of `bytes`.
  public static func checksum(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBytes { checksum($0) }
  }
}

/// The eight slicing tables, 256 entries each, laid out back to back.
///
/// `@unchecked Sendable` because it holds a raw pointer. Nobody owns the memory: it is filled once
/// inside `shared`'s initializer (which Swift runs exactly once, before any reader sees it), then
/// only read, and never freed.
struct CRC32CTables: @unchecked Sendable {
  let entries: UnsafePointer<UInt32>

  static let shared = CRC32CTables()

  private init() {
    let polynomial: UInt32 = 0x82F6_3B78
    let table = UnsafeMutablePointer<UInt32>.allocate(capacity: 8 * 256)
    for byte in 0..<256 {
      var crc = UInt32(byte)
      for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ polynomial : crc >> 1 }
      table[byte] = crc
    }
    // Table k advances a byte that is followed by k more bytes.
    for slice in 1..<8 {
      for byte in 0..<256 {
        let previous = table[(slice - 1) * 256 + byte]
        table[slice * 256 + byte] = (previous >> 8) ^ table[Int(previous & 0xFF)]
      }
    }
    entries = UnsafePointer(table)
  }
}

/// Advances an (inverted) CRC-32C register over `bytes`.
@usableFromInline
func crc32cAdvance(_ register: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
  guard var pointer = bytes.baseAddress else { return register }
  var remaining = bytes.count
  var crc = register
  let t = CRC32CTables.shared.entries
  @inline(__always) func lookup(_ table: Int, _ word: UInt64, _ shift: UInt64) -> UInt32 {
    t[table &* 256 &+ Int(truncatingIfNeeded: (word &>> shift) & 0xFF)]
  }
  while remaining >= 8 {
    // Unaligned 8-byte load: fine on x86-64 and arm64, and it spares an alignment prologue.
    let word = UInt64(littleEndian: pointer.loadUnaligned(as: UInt64.self)) ^ UInt64(crc)
    crc =
      lookup(7, word, 0) ^ lookup(6, word, 8) ^ lookup(5, word, 16) ^ lookup(4, word, 24)
      ^ lookup(3, word, 32) ^ lookup(2, word, 40) ^ lookup(1, word, 48) ^ lookup(0, word, 56)
    pointer += 8
    remaining &-= 8
  }
  while remaining > 0 {
    let index = Int(truncatingIfNeeded: (crc ^ UInt32(pointer.load(as: UInt8.self))) & 0xFF)
    crc = t[index] ^ (crc >> 8)
    pointer += 1
    remaining &-= 1
  }
  return crc
}
