/// An interning table of byte strings (user ids, coupon codes): each distinct string gets a dense
/// `UInt32` id in insertion order, and its bytes live once in one contiguous arena.
///
/// Why not `Dictionary<String, UInt32>` plus `[String]`: a flash sale holds millions of codes and
/// users, and a `String` of more than 15 UTF-8 bytes is a separate heap object (32+ bytes of
/// header) stored twice (key and array). Here an entry costs its bytes, one offset and two table
/// slots. Hashing uses the standard library's per-process seeded hasher, so ids chosen by
/// attackers cannot force collisions.
///
/// Each slot keeps 32 bits of its string's hash beside the id. A probe that meets another string
/// compares those bits and moves on without touching the arena (a claim's uniqueness check is an
/// unsuccessful search, which at a load of 3/4 probes about eight slots, all of them strings of
/// the same length: before the tags, each probe was a `memcmp`, 12% of the writer's time), and
/// growing re-places the slots from their tags without hashing any string again (before, growing
/// rehashed every string: 10% of the writer's time, in stalls of up to half a second at millions
/// of strings). The price is 4 more bytes per slot.
///
/// Owned by the writer thread, like all business state.
struct StringTable {
  /// All strings' bytes back to back.
  private var arena: [UInt8] = []
  /// `ends[id]` is the arena offset just past string `id`; it starts where `ends[id - 1]` ends.
  private var ends: [Int] = []
  /// Open addressing with linear probing; `0` is empty, otherwise `tag << 32 | (id + 1)`, where
  /// the tag is the low 32 bits of the string's hash. The home slot is `tag & mask`, so a slot can
  /// be re-placed from its tag alone (tables beyond 2³² slots would only use the first 2³² as home
  /// slots: slower, still correct).
  private var slots: [UInt64]
  private var mask: Int

  /// The number of distinct strings.
  var count: Int { ends.count }
  /// The total bytes of all strings.
  var byteCount: Int { arena.count }

  /// The largest number of strings: ids are `UInt32` and `UInt32.max` is reserved as "none".
  static let countMax = Int(UInt32.max - 1)

  init(capacity: Int = 16) {
    var size = 16
    while size < capacity * 2 { size <<= 1 }
    slots = [UInt64](repeating: 0, count: size)
    mask = size - 1
  }

  /// The id of `bytes`, if present.
  func find(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
    let tag = Self.hash(bytes)
    var index = Int(tag) & mask
    while true {
      let slot = slots[index]
      if slot == 0 { return nil }
      if UInt32(truncatingIfNeeded: slot >> 32) == tag {
        let id = Int(UInt32(truncatingIfNeeded: slot)) - 1
        if equals(id, bytes) { return UInt32(id) }
      }
      index = (index + 1) & mask
    }
  }

  /// Adds `bytes`, which must not be present, and returns its new id.
  mutating func insert(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    precondition(count < Self.countMax, "string table full")
    if (count + 1) * 4 > slots.count * 3 { grow() }
    let id = count
    arena.append(contentsOf: bytes)
    ends.append(arena.count)
    place(UInt64(Self.hash(bytes)) << 32 | UInt64(id + 1))
    return UInt32(id)
  }

  /// The id of `bytes`, inserting it if absent.
  mutating func intern(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    if let id = find(bytes) { return id }
    return insert(bytes)
  }

  /// Calls `body` with the bytes of string `id`.
  func withBytes<R>(of id: UInt32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    let id = Int(id)
    let start = id == 0 ? 0 : ends[id - 1]
    return try arena.withUnsafeBytes { raw in
      try body(UnsafeRawBufferPointer(rebasing: raw[start..<ends[id]]))
    }
  }

  /// String `id`, decoded as UTF-8 (the table only holds valid UTF-8).
  func string(of id: UInt32) -> String {
    withBytes(of: id) { String(decoding: $0, as: UTF8.self) }
  }

  /// Approximate heap bytes held.
  var memoryBytes: Int {
    arena.capacity + ends.capacity * MemoryLayout<Int>.stride
      + slots.capacity * MemoryLayout<UInt64>.stride
  }

  private func equals(_ id: Int, _ bytes: UnsafeRawBufferPointer) -> Bool {
    let start = id == 0 ? 0 : ends[id - 1]
    let end = ends[id]
    guard end - start == bytes.count else { return false }
    return arena.withUnsafeBytes { raw in
      bytes.count == 0 || memcmp(raw.baseAddress! + start, bytes.baseAddress!, bytes.count) == 0
    }
  }

  /// Puts an encoded slot into the first free slot from its home.
  private mutating func place(_ slot: UInt64) {
    var index = Int(UInt32(truncatingIfNeeded: slot >> 32)) & mask
    while slots[index] != 0 { index = (index + 1) & mask }
    slots[index] = slot
  }

  /// Doubles the slots, re-placing every entry from its tag (no string is hashed again).
  private mutating func grow() {
    let old = slots
    slots = [UInt64](repeating: 0, count: old.count * 2)
    mask = slots.count - 1
    for slot in old where slot != 0 { place(slot) }
  }

  /// The low 32 bits of the seeded hash of `bytes`: a slot's tag and home.
  private static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var hasher = Hasher()
    hasher.combine(bytes: bytes)
    return UInt32(truncatingIfNeeded: hasher.finalize())
  }
}

extension String {
  /// Calls `body` with the string's UTF-8 bytes, contiguous.
  func withUTF8Bytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    var copy = self
    return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
  }
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
