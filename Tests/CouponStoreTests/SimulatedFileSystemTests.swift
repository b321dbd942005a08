import CouponLog
import CouponSimulation
import Glibc
import Testing

/// Byte helpers for the disk tests.
extension SimulatedFileSystem {
  fileprivate func create(_ path: String) throws -> FileDescriptor {
    try openFile(path, options: [.readWrite, .create])
  }

  fileprivate func put(_ fd: FileDescriptor, _ bytes: [UInt8], at offset: Int64) throws {
    try bytes.withUnsafeBytes { try write(fd, $0, at: offset) }
  }
}

private func repeated(_ byte: Character, _ count: Int) -> [UInt8] {
  Array(repeating: byte.asciiValue!, count: count)
}

@Suite("Simulation: the simulated disk")
struct SimulatedFileSystemTests {
  /// A disk with `/d` durable and `/d/f` created, named durably, holding 10 synced bytes "A".
  static func diskWithSyncedFile(seed: UInt64 = 1) throws -> (SimulatedFileSystem, FileDescriptor) {
    let disk = SimulatedFileSystem(seed: seed)
    try disk.createDirectory("/d")
    try disk.syncDirectory("/")
    let fd = try disk.create("/d/f")
    try disk.put(fd, repeated("A", 10), at: 0)
    try disk.syncData(fd)
    try disk.syncDirectory("/d")
    return (disk, fd)
  }

  @Test func writesAreReadableAtOnceButDurableOnlyAfterASync() throws {
    let (disk, fd) = try Self.diskWithSyncedFile()
    try disk.put(fd, repeated("B", 5), at: 10)
    #expect(disk.contents(of: "/d/f") == repeated("A", 10) + repeated("B", 5))
    #expect(disk.syncedContents(of: "/d/f") == repeated("A", 10))
    var random = SimulationRandom(seed: 7)
    let image = disk.crash(policy: .dropUnsynced, random: &random)
    #expect(image.contents(of: "/d/f") == repeated("A", 10))
    #expect(image.crashReport?.syncedBytes["/d/f"] == 10)
  }

  @Test func aNewFileVanishesInACrashUntilItsDirectoryIsSynced() throws {
    let (disk, _) = try Self.diskWithSyncedFile()
    let fd = try disk.create("/d/new")
    try disk.put(fd, [1, 2, 3], at: 0)
    try disk.syncData(fd)  // the data is durable, the name is not
    var random = SimulationRandom(seed: 1)
    #expect(!disk.copy(seed: 0).crash(policy: .dropUnsynced, random: &random).fileExists("/d/new"))
    try disk.syncDirectory("/d")
    #expect(disk.crash(policy: .dropUnsynced, random: &random).contents(of: "/d/new") == [1, 2, 3])
  }

  @Test func aNewDirectoryNeedsItsParentSynced() throws {
    let disk = SimulatedFileSystem(seed: 1)
    try disk.createDirectory("/store")
    try disk.syncDirectory("/store")  // its entries, not its own name
    var random = SimulationRandom(seed: 1)
    #expect(!disk.copy(seed: 0).crash(policy: .dropUnsynced, random: &random).fileExists("/store"))
    try disk.syncDirectory("/")
    #expect(disk.crash(policy: .dropUnsynced, random: &random).fileExists("/store"))
  }

  /// Timeline: `tmp` is written and synced, renamed over `f`, and the power fails before the
  /// directory sync. Whatever the crash keeps, exactly one of the two names holds each content.
  @Test func aRenameSurvivesWholeOrNotAtAll() throws {
    var outcomes: Set<String> = []
    for seed in 1...64 as ClosedRange<UInt64> {
      let (disk, _) = try Self.diskWithSyncedFile(seed: seed)
      let fd = try disk.create("/d/tmp")
      try disk.put(fd, repeated("N", 4), at: 0)
      try disk.syncData(fd)
      try disk.rename("/d/tmp", to: "/d/f")
      #expect(disk.contents(of: "/d/f") == repeated("N", 4))
      #expect(!disk.fileExists("/d/tmp"))
      var random = SimulationRandom(seed: seed)
      let image = disk.crash(policy: .anyWriteback, random: &random)
      let f = image.contents(of: "/d/f")
      let tmp = image.contents(of: "/d/tmp")
      #expect(f == repeated("A", 10) || f == repeated("N", 4))
      #expect(tmp == nil || tmp == repeated("N", 4))
      if f == repeated("N", 4) { #expect(tmp == nil) }
      outcomes.insert("\(f?.count ?? 0)/\(tmp?.count ?? 0)")
    }
    #expect(outcomes.contains("4/0"))
    #expect(outcomes.contains("10/0") || outcomes.contains("10/4"))
  }

  /// Two unsynced appends after 10 synced bytes: ordered writeback never keeps the second
  /// without the first; any-order writeback sometimes does (leaving a hole of zeros).
  @Test func orderedWritebackKeepsAPrefixAndAnyWritebackMayNot() throws {
    var torn = 0
    var holes = 0
    for seed in 1...200 as ClosedRange<UInt64> {
      for policy in [CrashPolicy.orderedWriteback, .anyWriteback] {
        let (disk, fd) = try Self.diskWithSyncedFile(seed: seed)
        try disk.put(fd, repeated("B", 10), at: 10)
        try disk.put(fd, repeated("C", 10), at: 20)
        var random = SimulationRandom(seed: seed)
        let image = disk.crash(policy: policy, random: &random)
        let bytes = try #require(image.contents(of: "/d/f"))
        #expect(Array(bytes.prefix(10)) == repeated("A", 10), "synced bytes always survive")
        let hasC = bytes.count > 20 && bytes[20] == UInt8(ascii: "C")
        let hasAllB = bytes.count >= 20 && bytes[10..<20].allSatisfy { $0 == UInt8(ascii: "B") }
        if policy == .orderedWriteback {
          if hasC { #expect(hasAllB, "seed \(seed): a later write survived an earlier one") }
        } else if hasC && !hasAllB {
          holes += 1
        }
        torn += image.crashReport!.writesTorn
      }
    }
    #expect(holes > 0)
    #expect(torn > 0)
  }

  @Test func aFailedSyncLosesTheUnsyncedChangesForGood() throws {
    var lost = 0
    for seed in 1...32 as ClosedRange<UInt64> {
      let (disk, fd) = try Self.diskWithSyncedFile(seed: seed)
      try disk.put(fd, repeated("B", 5), at: 10)
      disk.inject(SimulatedFault(operation: disk.operationCount + 1, kinds: [.syncData]))
      #expect(throws: SystemCallError.self) { try disk.syncData(fd) }
      try disk.syncData(fd)  // succeeds, and must not bring the lost change back
      #expect(disk.contents(of: "/d/f")?.count == 15, "reads still see the lost bytes")
      var random = SimulationRandom(seed: seed)
      let image = disk.crash(policy: .dropUnsynced, random: &random)
      if image.contents(of: "/d/f")?.count == 10 { lost += 1 }
    }
    #expect(lost > 0)
  }

  @Test func aFaultFiresOnceAtTheChosenOperationAndKind() throws {
    let (disk, fd) = try Self.diskWithSyncedFile()
    let next = disk.operationCount + 1
    disk.inject(SimulatedFault(operation: next, errno: ENOSPC, kinds: [.write]))
    _ = try disk.size(of: fd)  // operation `next`: not a write, goes through
    let error = #expect(throws: SystemCallError.self) { try disk.put(fd, [1], at: 10) }
    #expect(error?.errno == ENOSPC)
    #expect(error?.syscall == "pwrite")
    #expect(disk.firedFaults.map(\.operation) == [next + 1])
    try disk.put(fd, [1], at: 10)  // once only
    disk.inject(SimulatedFault(operation: 1, kinds: [.syncData], persistent: true))
    for _ in 0..<3 { #expect(throws: SystemCallError.self) { try disk.syncData(fd) } }
    #expect(disk.firedFaults.count == 4)
  }

  @Test func powerOffFailsEveryLaterOperationAndFreezesTheDisk() throws {
    let (disk, fd) = try Self.diskWithSyncedFile()
    disk.powerOff(atOperation: disk.operationCount + 2)
    try disk.put(fd, [1], at: 10)
    #expect(throws: SystemCallError.self) { try disk.put(fd, [2], at: 11) }
    #expect(throws: SystemCallError.self) { try disk.syncData(fd) }
    #expect(throws: SystemCallError.self) { _ = try disk.contentsOfDirectory("/d") }
    #expect(disk.isPoweredOff)
    #expect(disk.contents(of: "/d/f") == repeated("A", 10) + [1])
    var random = SimulationRandom(seed: 3)
    let image = disk.crash(policy: .keepUnsynced, random: &random)
    #expect(image.contents(of: "/d/f") == repeated("A", 10) + [1])
    #expect(!image.isPoweredOff)
  }

  @Test func aDirectoryLockIsExclusiveUntilReleasedOrCrashed() throws {
    let (disk, _) = try Self.diskWithSyncedFile()
    let lock = try disk.lockDirectory("/d")
    let error = #expect(throws: SystemCallError.self) { _ = try disk.lockDirectory("/d") }
    #expect(error?.errno == EWOULDBLOCK)
    disk.unlock(lock)
    let again = try disk.lockDirectory("/d")
    try disk.syncDirectory("/d")
    var random = SimulationRandom(seed: 1)
    let image = disk.crash(policy: .dropUnsynced, random: &random)
    image.unlock(try image.lockDirectory("/d"))  // the crashed process's lock is gone
    disk.unlock(again)
  }

  @Test func aFlipChangesExactlyOneBitOfSyncedData() throws {
    let (disk, _) = try Self.diskWithSyncedFile()
    var random = SimulationRandom(seed: 5)
    let flip = try #require(disk.randomSyncedBit(random: &random))
    disk.flip(flip)
    let after = try #require(disk.syncedContents(of: flip.path))
    let differing = zip(after, repeated("A", 10)).filter { $0 != $1 }
    #expect(differing.count == 1)
    #expect(after[flip.offset] == UInt8(ascii: "A") ^ (1 << UInt8(flip.bit)))
    #expect(disk.contents(of: flip.path) == after)
  }

  @Test func theSameSeedsGiveTheSameCrashImage() throws {
    func image(_ seed: UInt64) throws -> [UInt8]? {
      let (disk, fd) = try Self.diskWithSyncedFile(seed: seed)
      for index in 0..<8 { try disk.put(fd, repeated("B", 7), at: Int64(10 + 7 * index)) }
      var random = SimulationRandom(seed: seed)
      return disk.crash(policy: .anyWriteback, random: &random).contents(of: "/d/f")
    }
    for seed in 1...16 as ClosedRange<UInt64> { #expect(try image(seed) == image(seed)) }
    #expect(try Set((1...16 as ClosedRange<UInt64>).map { try image($0) }).count > 1)
  }

  @Test func theGeneratorIsDeterministicAndUniformEnough() {
    var a = SimulationRandom(seed: 42)
    var b = SimulationRandom(seed: 42)
    #expect((0..<100).map { _ in a.next() } == (0..<100).map { _ in b.next() })
    var random = SimulationRandom(seed: 9)
    var counts = [Int](repeating: 0, count: 7)
    for _ in 0..<7_000 { counts[random.below(7)] += 1 }
    #expect(counts.allSatisfy { (800...1_200).contains($0) }, "\(counts)")
    var parent = SimulationRandom(seed: 9)
    var left = parent.split()
    var right = parent.split()
    #expect(left.next() != right.next())
  }
}
