/// An interning table of byte strings (user ids, coupon codes): each distinct string gets a dense
/// `UInt32` id in insertion order, and its bytes live once in one contiguous arena.
///
/// Why not `Dictionary<String, UInt32>` plus `[String]`: a flash sale holds millions of codes and
/// users, and a `String` of more than 15 UTF-8 bytes is a separate heap object (32+ bytes of
/// header) stored twice (key and array). Here an entry costs its bytes, one offset and one 8-byte
/// slot at a load factor of ⅜–¾. Each slot holds the id and 32 bits of the string's hash, so a
/// probe touches the arena only when the hashes agree, and the table grows without rehashing
/// any string: with millions of entries every extra memory access is a cache miss, and these
/// lookups are most of a claim's cost. Hashing uses the standard library's per-process seeded
/// hasher, so ids chosen by attackers cannot force collisions.
///
/// Owned by the writer thread, like all business state.
struct StringTable {
  /// All strings' bytes back to back.
  private var arena: [UInt8] = []
  /// `ends[id]` is the arena offset just past string `id`; it starts where `ends[id - 1]` ends.
  private var ends: [Int] = []
  /// Open addressing with linear probing. `0` is empty; otherwise the high 32 bits are the
  /// string's tag (the high half of its hash) and the low 32 bits are `id + 1`. A slot's home
  /// index is the top bits of the tag.
  private var slots: [UInt64]
  private var shift: Int

  /// The number of distinct strings.
  var count: Int { ends.count }
  /// The total bytes of all strings.
  var byteCount: Int { arena.count }

  /// The largest number of strings: ids are `UInt32` and `UInt32.max` is reserved as "none".
  static let countMax = Int(UInt32.max - 1)

  init(capacity: Int = 16) {
    var bits = 4
    while (1 << bits) < capacity * 2 { bits += 1 }
    slots = [UInt64](repeating: 0, count: 1 << bits)
    shift = 32 - bits
  }

  /// The hash of `bytes`, to pass to the `hash:` variants when one string is looked up and then
  /// inserted.
  static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var hasher = Hasher()
    hasher.combine(bytes: bytes)
    return UInt32(truncatingIfNeeded: UInt64(bitPattern: Int64(hasher.finalize())) >> 32)
  }

  /// The id of `bytes`, if present.
  func find(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
    find(bytes, hash: Self.hash(bytes))
  }

  /// The id of `bytes`, whose ``hash(_:)`` is `hash`, if present.
  func find(_ bytes: UnsafeRawBufferPointer, hash: UInt32) -> UInt32? {
    let mask = slots.count - 1
    var index = Int(hash >> shift)
    while true {
      let slot = slots[index]
      if slot == 0 { return nil }
      if UInt32(truncatingIfNeeded: slot >> 32) == hash {
        let id = Int(UInt32(truncatingIfNeeded: slot) - 1)
        if equals(id, bytes) { return UInt32(id) }
      }
      index = (index + 1) & mask
    }
  }

  /// Adds `bytes`, which must not be present, and returns its new id.
  mutating func insert(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    insert(bytes, hash: Self.hash(bytes))
  }

  /// Adds `bytes`, whose ``hash(_:)`` is `hash` and which must not be present.
  mutating func insert(_ bytes: UnsafeRawBufferPointer, hash: UInt32) -> UInt32 {
    precondition(count < Self.countMax, "string table full")
    if (count + 1) * 4 > slots.count * 3 { grow() }
    let id = count
    arena.append(contentsOf: bytes)
    ends.append(arena.count)
    place(UInt64(hash) << 32 | UInt64(id + 1))
    return UInt32(id)
  }

  /// The id of `bytes`, inserting it if absent.
  mutating func intern(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    findOrInsert(bytes).id
  }

  /// The id of `bytes`, inserting it if absent, and whether it was inserted.
  mutating func findOrInsert(_ bytes: UnsafeRawBufferPointer) -> (id: UInt32, inserted: Bool) {
    let hash = Self.hash(bytes)
    if let id = find(bytes, hash: hash) { return (id, false) }
    return (insert(bytes, hash: hash), true)
  }

  /// Makes room for `additional` more strings, so that adding them does not grow the table.
  mutating func reserveCapacity(additional: Int) {
    while (count + additional) * 4 > slots.count * 3 { grow() }
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

  private mutating func place(_ slot: UInt64) {
    let mask = slots.count - 1
    var index = Int(UInt32(truncatingIfNeeded: slot >> 32) >> shift)
    while slots[index] != 0 { index = (index + 1) & mask }
    slots[index] = slot
  }

  private mutating func grow() {
    precondition(shift > 0, "string table cannot grow past 2^32 slots")
    let old = slots
    slots = [UInt64](repeating: 0, count: old.count * 2)
    shift -= 1
    for slot in old where slot != 0 { place(slot) }
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
