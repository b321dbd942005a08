/// An interning table of byte strings (user ids, coupon codes): each distinct string gets a dense
/// `UInt32` id in insertion order, and its bytes live once in one contiguous arena.
///
/// Why not `Dictionary<String, UInt32>` plus `[String]`: a flash sale holds millions of codes and
/// users, and a `String` of more than 15 UTF-8 bytes is a separate heap object (32+ bytes of
/// header) stored twice (key and array). Here an entry costs its bytes, one offset and two table
/// slots. Hashing uses the standard library's per-process seeded hasher, so ids chosen by
/// attackers cannot force collisions.
///
/// Owned by the writer thread, like all business state.
struct StringTable {
  /// All strings' bytes back to back.
  private var arena: [UInt8] = []
  /// `ends[id]` is the arena offset just past string `id`; it starts where `ends[id - 1]` ends.
  private var ends: [Int] = []
  /// Open addressing with linear probing; `0` is empty, otherwise `id + 1`.
  private var slots: [UInt32]
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
    slots = [UInt32](repeating: 0, count: size)
    mask = size - 1
  }

  /// The id of `bytes`, if present.
  func find(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
    var index = Self.hash(bytes) & mask
    while true {
      let slot = slots[index]
      if slot == 0 { return nil }
      let id = Int(slot - 1)
      if equals(id, bytes) { return UInt32(id) }
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
    place(id, hash: Self.hash(bytes))
    return UInt32(id)
  }

  /// The id of `bytes`, inserting it if absent.
  mutating func intern(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    if let id = find(bytes) { return id }
    return insert(bytes)
  }

  /// The id of `bytes`, inserting it if absent, and whether it was inserted. One hash and one
  /// probe sequence (``intern(_:)`` hashes twice): uploads add millions of codes this way.
  mutating func findOrInsert(_ bytes: UnsafeRawBufferPointer) -> (id: UInt32, inserted: Bool) {
    if (count + 1) * 4 > slots.count * 3 { grow() }
    var index = Self.hash(bytes) & mask
    while true {
      let slot = slots[index]
      if slot == 0 { break }
      if equals(Int(slot - 1), bytes) { return (slot - 1, false) }
      index = (index + 1) & mask
    }
    precondition(count < Self.countMax, "string table full")
    let id = count
    arena.append(contentsOf: bytes)
    ends.append(arena.count)
    slots[index] = UInt32(id + 1)
    return (UInt32(id), true)
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
      + slots.capacity * MemoryLayout<UInt32>.stride
  }

  private func equals(_ id: Int, _ bytes: UnsafeRawBufferPointer) -> Bool {
    let start = id == 0 ? 0 : ends[id - 1]
    let end = ends[id]
    guard end - start == bytes.count else { return false }
    return arena.withUnsafeBytes { raw in
      bytes.count == 0 || memcmp(raw.baseAddress! + start, bytes.baseAddress!, bytes.count) == 0
    }
  }

  private mutating func place(_ id: Int, hash: Int) {
    var index = hash & mask
    while slots[index] != 0 { index = (index + 1) & mask }
    slots[index] = UInt32(id + 1)
  }

  private mutating func grow() {
    let size = slots.count * 2
    slots = [UInt32](repeating: 0, count: size)
    mask = size - 1
    for id in 0..<count {
      let hash = withBytes(of: UInt32(id)) { Self.hash($0) }
      place(id, hash: hash)
    }
  }

  private static func hash(_ bytes: UnsafeRawBufferPointer) -> Int {
    var hasher = Hasher()
    hasher.combine(bytes: bytes)
    return hasher.finalize()
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
