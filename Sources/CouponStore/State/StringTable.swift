/// An interning table of byte strings (user ids, coupon codes): each distinct string gets a dense
/// `UInt32` id in insertion order, and its bytes live once in one contiguous arena.
///
/// Why not `Dictionary<String, UInt32>` plus `[String]`: a flash sale holds millions of codes and
/// users, and a `String` of more than 15 UTF-8 bytes is a separate heap object (32+ bytes of
/// header) stored twice (key and array). Here an entry costs its bytes, one offset and two table
/// slots. Hashing uses the standard library's per-process seeded hasher, so ids chosen by
/// attackers cannot force collisions.
///
/// Each slot keeps 32 bits of its string's hash (the *tag*) beside the id. A probe compares tags
/// and touches the arena only when they match, so a lookup costs about one cache miss even in a
/// table of tens of millions of strings; and growing re-places slots from their tags without
/// hashing any string again. (With bare ids in the slots, every probe of a linear-probing chain
/// read the arena and compared bytes: replaying a log spent most of its time there.)
///
/// Owned by the writer thread, like all business state.
struct StringTable {
  /// All strings' bytes back to back.
  private var arena: [UInt8] = []
  /// `ends[id]` is the arena offset just past string `id`; it starts where `ends[id - 1]` ends.
  private var ends: [Int] = []
  /// Open addressing with linear probing. `0` is empty; otherwise the tag (the low 32 bits of the
  /// string's hash) in the high half and `id + 1` in the low half. A string's home slot is
  /// `tag & mask`.
  private var slots: [UInt64]
  private var mask: Int

  /// The number of distinct strings.
  var count: Int { ends.count }
  /// The total bytes of all strings.
  var byteCount: Int { arena.count }

  /// The largest number of strings: ids are `UInt32` and `UInt32.max` is reserved as "none".
  static let countMax = Int(UInt32.max - 1)

  init(capacity: Int = 16) {
    let size = Self.slotCount(for: capacity)
    slots = Self.emptySlots(size)
    mask = size - 1
  }

  /// A table of strings already laid out (a snapshot's): `ends` as in a live table, each string
  /// hashed once into a slot array sized up front. Returns `nil` if a string occurs twice or the
  /// ends do not describe `arena`.
  init?(arena: [UInt8], ends: [Int]) {
    guard ends.count <= Self.countMax, (ends.last ?? 0) == arena.count else { return nil }
    let size = Self.slotCount(for: ends.count)
    var slots = Self.emptySlots(size)
    let built = arena.withUnsafeBytes { arena in
      ends.withUnsafeBufferPointer { ends in
        slots.withUnsafeMutableBufferPointer { slots in
          Self.place(arena: arena, ends: ends, into: slots)
        }
      }
    }
    guard built else { return nil }
    self.arena = arena
    self.ends = ends
    self.slots = slots
    self.mask = size - 1
  }

  /// Fills empty `slots` (a power of two) with every string of `arena`/`ends`; `false` if a
  /// string occurs twice or the ends go backwards.
  ///
  /// Placing strings in id order would jump to a random slot per string: a cache and TLB miss
  /// each, most of the time of loading a snapshot of millions. So the strings are hashed first
  /// (reading the arena in order), bucketed by their home slot with a counting sort, and placed
  /// bucket by bucket, walking the slot array once from start to end. Any insertion order gives
  /// a valid linear-probing table.
  private static func place(
    arena: UnsafeRawBufferPointer, ends: UnsafeBufferPointer<Int>,
    into slots: UnsafeMutableBufferPointer<UInt64>
  ) -> Bool {
    let count = ends.count
    let mask = slots.count - 1
    let bucketShift = 10
    let bucketCount = (slots.count >> bucketShift) + 1
    func bytes(_ id: Int) -> UnsafeRawBufferPointer {
      UnsafeRawBufferPointer(rebasing: arena[(id == 0 ? 0 : ends[id - 1])..<ends[id]])
    }
    let tags = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: count)
    // Slot values (tag and id) in bucket order, so that placing reads them sequentially.
    let order = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: count)
    let next = UnsafeMutableBufferPointer<Int>.allocate(capacity: bucketCount)
    defer {
      tags.deallocate()
      order.deallocate()
      next.deallocate()
    }
    adviseHugePages(UnsafeMutableRawBufferPointer(tags))
    adviseHugePages(UnsafeMutableRawBufferPointer(order))
    next.initialize(repeating: 0)
    var start = 0
    for id in 0..<count {
      guard ends[id] >= start else { return false }
      start = ends[id]
      let tag = Self.tag(bytes(id))
      tags[id] = tag
      next[(Int(tag) & mask) >> bucketShift] += 1
    }
    var total = 0
    for bucket in 0..<bucketCount {
      let size = next[bucket]
      next[bucket] = total
      total += size
    }
    for id in 0..<count {
      let bucket = (Int(tags[id]) & mask) >> bucketShift
      order[next[bucket]] = Self.slot(tag: tags[id], id: id)
      next[bucket] += 1
    }
    for value in order {
      let tag = UInt32(truncatingIfNeeded: value >> 32)
      var index = Int(tag) & mask
      while slots[index] != 0 {
        let slot = slots[index]
        if UInt32(truncatingIfNeeded: slot >> 32) == tag,
          bytes(Int(UInt32(truncatingIfNeeded: slot)) - 1).elementsEqual(
            bytes(Int(UInt32(truncatingIfNeeded: value)) - 1))
        {
          return false
        }
        index = (index + 1) & mask
      }
      slots[index] = value
    }
    return true
  }

  /// Calls `body` with all strings' bytes back to back and the offset just past each (string
  /// `id` is `arena[ends[id - 1] ..< ends[id]]`, the first starting at 0): for snapshots.
  func withStorage<R>(
    _ body: (_ arena: UnsafeRawBufferPointer, _ ends: UnsafeBufferPointer<Int>) throws -> R
  ) rethrows -> R {
    try arena.withUnsafeBytes { arena in
      try ends.withUnsafeBufferPointer { ends in try body(arena, ends) }
    }
  }

  /// The smallest power-of-two slot count (at least 16) that holds `count` strings at a load of
  /// at most 3/4.
  private static func slotCount(for count: Int) -> Int {
    var size = 16
    while size / 4 * 3 < count { size <<= 1 }
    return size
  }

  /// The id of `bytes`, if present.
  func find(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
    find(bytes, tag: Self.tag(bytes))
  }

  /// The id of `bytes`, whose tag (``tag(_:)``) the caller computed already.
  func find(_ bytes: UnsafeRawBufferPointer, tag: UInt32) -> UInt32? {
    slots.withUnsafeBufferPointer { slots in
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
  }

  /// Adds `bytes`, which must not be present, and returns its new id.
  mutating func insert(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    insert(bytes, tag: Self.tag(bytes))
  }

  /// Adds `bytes`, which must not be present and whose tag the caller computed already.
  mutating func insert(_ bytes: UnsafeRawBufferPointer, tag: UInt32) -> UInt32 {
    precondition(count < Self.countMax, "string table full")
    if count + 1 > slots.count / 4 * 3 { grow() }
    let id = count
    arena.append(contentsOf: bytes)
    ends.append(arena.count)
    place(Self.slot(tag: tag, id: id))
    return UInt32(id)
  }

  /// The id of `bytes`, inserting it if absent (hashing it once).
  mutating func intern(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    findOrInsert(bytes).id
  }

  /// The id of `bytes`, inserting it if absent, and whether it was inserted.
  mutating func findOrInsert(_ bytes: UnsafeRawBufferPointer) -> (id: UInt32, inserted: Bool) {
    let tag = Self.tag(bytes)
    if let id = find(bytes, tag: tag) { return (id, false) }
    return (insert(bytes, tag: tag), true)
  }

  /// Makes room for `additional` more strings, so that adding them does not grow the table.
  mutating func reserveCapacity(additional: Int) {
    while (count + additional) * 4 > slots.count * 3 { grow() }
  }

  /// The id of `bytes`, whose tag the caller computed already, inserting it if absent.
  mutating func intern(_ bytes: UnsafeRawBufferPointer, tag: UInt32) -> UInt32 {
    if let id = find(bytes, tag: tag) { return id }
    return insert(bytes, tag: tag)
  }

  /// Reads the slot where a lookup of `tag` starts, so that the lookup, soon after, finds it in
  /// the cache; the caller folds the value into something it keeps, so the load stays.
  func touch(tag: UInt32) -> UInt64 {
    slots.withUnsafeBufferPointer { $0[Int(tag) & mask] }
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

  private static func slot(tag: UInt32, id: Int) -> UInt64 {
    UInt64(tag) << 32 | UInt64(id + 1)
  }

  private mutating func place(_ slot: UInt64) {
    let mask = self.mask
    slots.withUnsafeMutableBufferPointer { slots in
      var index = Int(slot >> 32) & mask
      while slots[index] != 0 { index = (index + 1) & mask }
      slots[index] = slot
    }
  }

  /// Doubles the slot array and re-places every slot by its tag (no string is hashed again).
  private mutating func grow() {
    let old = slots
    let size = slots.count * 2
    slots = Self.emptySlots(size)
    mask = size - 1
    for slot in old where slot != 0 { place(slot) }
  }

  /// A zeroed slot array. Tables of millions of strings are probed at random, one TLB miss per
  /// probe with 4 KiB pages; so large arrays ask the kernel for transparent huge pages before
  /// they are first touched (Linux `madvise(MADV_HUGEPAGE)`; a hint the kernel may ignore).
  private static func emptySlots(_ count: Int) -> [UInt64] {
    [UInt64](unsafeUninitializedCapacity: count) { buffer, initialized in
      adviseHugePages(UnsafeMutableRawBufferPointer(buffer))
      buffer.initialize(repeating: 0)
      initialized = count
    }
  }

  /// The 32 bits of `bytes`' hash a slot keeps; lookups and inserts take it precomputed.
  static func tag(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var hasher = Hasher()
    hasher.combine(bytes: bytes)
    return UInt32(truncatingIfNeeded: hasher.finalize())
  }
}

/// Asks for transparent huge pages over the 2 MiB-aligned part of `buffer` if it spans at least
/// one huge page. Only a hint: errors are ignored.
func adviseHugePages(_ buffer: UnsafeMutableRawBufferPointer) {
  #if os(Linux)
    let hugePage = 2 << 20
    guard let base = buffer.baseAddress, buffer.count >= 2 * hugePage else { return }
    let start = (Int(bitPattern: base) + hugePage - 1) & ~(hugePage - 1)
    let end = (Int(bitPattern: base) + buffer.count) & ~(hugePage - 1)
    guard end > start, let pointer = UnsafeMutableRawPointer(bitPattern: start) else { return }
    _ = madvise(pointer, end - start, MADV_HUGEPAGE)
  #endif
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
