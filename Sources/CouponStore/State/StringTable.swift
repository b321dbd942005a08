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
/// The slots are split into 256 shards by the tag's top byte, each its own open-addressing
/// table that doubles on its own. Growing one table of ten million slots stopped the writer for
/// tens of milliseconds, and every claim arriving meanwhile waited (it was most of the open-loop
/// p99); a shard holds 1/256 of the slots, so a growth costs ~1/256 of that, and shards reach
/// their thresholds at slightly different times, so the growths spread out.
///
/// Owned by the writer thread, like all business state.
struct StringTable {
  /// One shard's open-addressing table, with linear probing. A slot is `0` when empty; otherwise
  /// the tag (the low 32 bits of the string's hash) in the high half and `id + 1` in the low
  /// half. A string's home slot in its shard is `tag & mask`.
  struct Shard {
    var slots: [UInt64]
    var mask: Int
    var count = 0

    init(slotCount: Int) {
      slots = StringTable.emptySlots(slotCount)
      mask = slotCount - 1
    }

    /// Whether one more string would push the load past 3/4.
    var isFull: Bool { (count + 1) * 4 > slots.count * 3 }
  }

  /// How many shards (a power of two), and how far the tag is shifted to pick one. The home slot
  /// within a shard uses the tag's low bits, independent of the top byte while a shard has at
  /// most 2^24 slots (billions of strings in all).
  static let shardCount = 256
  private static let shardShift = 24

  /// All strings' bytes back to back.
  private var arena: [UInt8] = []
  /// `ends[id]` is the arena offset just past string `id`; it starts where `ends[id - 1]` ends.
  private var ends: [Int] = []
  private var shards: [Shard]

  /// The number of distinct strings.
  var count: Int { ends.count }
  /// The total bytes of all strings.
  var byteCount: Int { arena.count }

  /// The largest number of strings: ids are `UInt32` and `UInt32.max` is reserved as "none".
  static let countMax = Int(UInt32.max - 1)

  /// An empty table with room for about `capacity` strings before any shard grows.
  init(capacity: Int = 0) {
    let size = Self.slotCount(for: Self.shareOfShard(capacity))
    shards = (0..<Self.shardCount).map { _ in Shard(slotCount: size) }
  }

  /// The number of strings a shard should have room for when the table holds `count`: its even
  /// share plus a margin of a few standard deviations (strings fall into shards at random).
  private static func shareOfShard(_ count: Int) -> Int {
    let share = count / shardCount
    return share == 0 ? 0 : share + 4 * Int(Double(share).squareRoot()) + 8
  }

  private static func shard(of tag: UInt32) -> Int { Int(tag >> UInt32(shardShift)) }

  /// A table of strings already laid out (a snapshot's): `ends` as in a live table, each string
  /// hashed once into a slot array sized up front. Returns `nil` if a string occurs twice or the
  /// ends do not describe `arena`.
  init?(arena: [UInt8], ends: [Int]) {
    guard ends.count <= Self.countMax, (ends.last ?? 0) == arena.count else { return nil }
    let shards = arena.withUnsafeBytes { arena in
      ends.withUnsafeBufferPointer { ends in Self.build(arena: arena, ends: ends) }
    }
    guard let shards else { return nil }
    self.arena = arena
    self.ends = ends
    self.shards = shards
  }

  /// The shards holding every string of `arena`/`ends`; `nil` if a string occurs twice or the
  /// ends go backwards.
  ///
  /// Placing strings in id order would jump to a random slot per string: a cache and TLB miss
  /// each, most of the time of loading a snapshot of millions. So the strings are hashed first
  /// (reading the arena in order), sorted by shard and, within a shard, by home slot with a
  /// counting sort, and placed shard by shard, bucket by bucket, walking each shard's slots once
  /// from start to end. Any insertion order gives a valid linear-probing table.
  private static func build(arena: UnsafeRawBufferPointer, ends: UnsafeBufferPointer<Int>)
    -> [Shard]?
  {
    let count = ends.count
    func bytes(_ id: Int) -> UnsafeRawBufferPointer {
      UnsafeRawBufferPointer(rebasing: arena[(id == 0 ? 0 : ends[id - 1])..<ends[id]])
    }
    // Slot values (tag and id), first in id order, then sorted by shard.
    let values = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: count)
    let byShard = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: count)
    defer {
      values.deallocate()
      byShard.deallocate()
    }
    adviseHugePages(UnsafeMutableRawBufferPointer(values))
    adviseHugePages(UnsafeMutableRawBufferPointer(byShard))
    var shardStarts = [Int](repeating: 0, count: shardCount + 1)
    var start = 0
    for id in 0..<count {
      guard ends[id] >= start else { return nil }
      start = ends[id]
      let tag = Self.tag(bytes(id))
      values[id] = Self.slot(tag: tag, id: id)
      shardStarts[shard(of: tag) + 1] += 1
    }
    for index in 0..<shardCount { shardStarts[index + 1] += shardStarts[index] }
    var next = shardStarts
    for value in values {
      let shard = shard(of: UInt32(truncatingIfNeeded: value >> 32))
      byShard[next[shard]] = value
      next[shard] += 1
    }
    var shards: [Shard] = []
    shards.reserveCapacity(shardCount)
    for index in 0..<shardCount {
      let members = UnsafeMutableBufferPointer(
        rebasing: byShard[shardStarts[index]..<shardStarts[index + 1]])
      var shard = Shard(slotCount: slotCount(for: members.count))
      shard.count = members.count
      let placed = shard.slots.withUnsafeMutableBufferPointer { slots in
        place(members, into: slots, sortingWith: values, bytes: bytes)
      }
      guard placed else { return nil }
      shards.append(shard)
    }
    return shards
  }

  /// Places slot `values` (one shard's) into its empty `slots` in home-slot order, using
  /// `scratch` (at least as long as `values`) for the counting sort; `false` if a string occurs
  /// twice.
  private static func place(
    _ values: UnsafeMutableBufferPointer<UInt64>, into slots: UnsafeMutableBufferPointer<UInt64>,
    sortingWith scratch: UnsafeMutableBufferPointer<UInt64>,
    bytes: (Int) -> UnsafeRawBufferPointer
  ) -> Bool {
    let mask = slots.count - 1
    let bucketShift = 10
    let bucketCount = (slots.count >> bucketShift) + 1
    func bucket(_ value: UInt64) -> Int { (Int(value >> 32) & mask) >> bucketShift }
    var next = [Int](repeating: 0, count: bucketCount + 1)
    for value in values { next[bucket(value) + 1] += 1 }
    for index in 0..<bucketCount { next[index + 1] += next[index] }
    for value in values {
      scratch[next[bucket(value)]] = value
      next[bucket(value)] += 1
    }
    for value in scratch.prefix(values.count) {
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
  static func slotCount(for count: Int) -> Int {
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
    let shard = Self.shard(of: tag)
    let mask = shards[shard].mask
    return shards[shard].slots.withUnsafeBufferPointer { slots in
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
    let shard = Self.shard(of: tag)
    if shards[shard].isFull { grow(shard) }
    let id = count
    arena.append(contentsOf: bytes)
    ends.append(arena.count)
    place(Self.slot(tag: tag, id: id), in: shard)
    shards[shard].count += 1
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

  /// Reserves capacity (not memory: pages are touched only when used) in the arena and the ends
  /// for `additional` more strings as long as the average so far, so that appending them never
  /// copies the arrays. The shards are not reserved: growing one is cheap, and their slots are
  /// zeroed (touched) when allocated.
  mutating func reserveStorage(additional: Int) {
    let averageBytes = count == 0 ? 16 : (arena.count + count - 1) / count
    ends.reserveCapacity(count + additional)
    arena.reserveCapacity(arena.count + additional * averageBytes)
  }

  /// Makes room for about `additional` more strings (spread over the shards at random), so that
  /// adding them most likely grows no shard.
  mutating func reserveCapacity(additional: Int) {
    let share = Self.shareOfShard(count + additional)
    for shard in 0..<Self.shardCount {
      while (share + 1) * 4 > shards[shard].slots.count * 3 { grow(shard) }
    }
  }

  /// The id of `bytes`, whose tag the caller computed already, inserting it if absent.
  mutating func intern(_ bytes: UnsafeRawBufferPointer, tag: UInt32) -> UInt32 {
    if let id = find(bytes, tag: tag) { return id }
    return insert(bytes, tag: tag)
  }

  /// Reads the slot where a lookup of `tag` starts, so that the lookup, soon after, finds it in
  /// the cache; the caller folds the value into something it keeps, so the load stays.
  func touch(tag: UInt32) -> UInt64 {
    let shard = Self.shard(of: tag)
    return shards[shard].slots.withUnsafeBufferPointer { $0[Int(tag) & shards[shard].mask] }
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
      + shards.reduce(0) { $0 + $1.slots.capacity * MemoryLayout<UInt64>.stride }
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

  private mutating func place(_ slot: UInt64, in shard: Int) {
    let mask = shards[shard].mask
    shards[shard].slots.withUnsafeMutableBufferPointer { slots in
      var index = Int(slot >> 32) & mask
      while slots[index] != 0 { index = (index + 1) & mask }
      slots[index] = slot
    }
  }

  /// Doubles one shard and re-places its slots by their tags (no string is hashed again).
  private mutating func grow(_ shard: Int) {
    let old = shards[shard].slots
    let size = old.count * 2
    shards[shard].slots = Self.emptySlots(size)
    shards[shard].mask = size - 1
    for slot in old where slot != 0 { place(slot, in: shard) }
  }

  /// A zeroed slot array. Tables of millions of strings are probed at random, one TLB miss per
  /// probe with 4 KiB pages; so large arrays ask the kernel for transparent huge pages before
  /// they are first touched (Linux `madvise(MADV_HUGEPAGE)`; a hint the kernel may ignore).
  fileprivate static func emptySlots(_ count: Int) -> [UInt64] {
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
