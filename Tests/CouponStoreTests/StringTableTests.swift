import Testing

@testable import CouponStore

@Suite("String table")
struct StringTableTests {
  static func strings(_ count: Int) -> [String] {
    (0..<count).map { "s\($0)-" + String(repeating: "x", count: $0 % 13) }
  }

  @Test func stringsInsertedThroughManyGrowthsAreFoundAtTheirIds() {
    var table = StringTable()
    let strings = Self.strings(50_000)
    for (index, string) in strings.enumerated() {
      #expect(string.withUTF8Bytes { table.insert($0) } == UInt32(index))
    }
    #expect(table.count == strings.count)
    for (index, string) in strings.enumerated() where index % 7 == 0 {
      #expect(table.find(ascii: string) == UInt32(index))
      #expect(table.string(of: UInt32(index)) == string)
    }
    #expect(table.find(ascii: "absent") == nil)
    #expect("s3-xxx".withUTF8Bytes { table.intern($0) } == 3)
    #expect("new".withUTF8Bytes { table.intern($0) } == UInt32(strings.count))
  }

  @Test func bulkBuiltTableEqualsTheIncrementalOne() throws {
    var incremental = StringTable()
    for string in Self.strings(20_000) { _ = string.withUTF8Bytes { incremental.insert($0) } }
    let (arena, ends) = incremental.withStorage { (Array($0), Array($1)) }
    var bulk = try #require(StringTable(arena: arena, ends: ends))
    #expect(bulk.count == incremental.count)
    for (index, string) in Self.strings(20_000).enumerated() {
      #expect(bulk.find(ascii: string) == UInt32(index))
    }
    #expect("later".withUTF8Bytes { bulk.insert($0) } == 20_000)
    #expect(bulk.find(ascii: "later") == 20_000)
  }

  @Test func bulkBuildRefusesDuplicatesAndInconsistentEnds() {
    let arena = Array("abcab".utf8)
    #expect(StringTable(arena: arena, ends: [2, 3, 5]) == nil)  // "ab" twice
    #expect(StringTable(arena: arena, ends: [2, 3, 4]) == nil)  // does not cover the arena
    #expect(StringTable(arena: arena, ends: [3, 2, 5]) == nil)  // ends go backwards
    #expect(StringTable(arena: arena, ends: [1, 3, 5]) != nil)
    #expect(StringTable(arena: [], ends: []) != nil)
  }
}

@Suite("Room reserved at campaign creation")
struct ReservedRoomTests {
  /// A campaign's stock is reserved (capped) in the arrays claims append to, so that a sale never
  /// pauses the writer to copy them; a small stock reserves no more than it needs.
  @Test func creatingACampaignReservesItsStockCapped() {
    var state = StoreState(requestWindow: 0)
    var record = ReplayBatcherTests.campaign("small")
    record.stock = 50_000
    let small = state.applyCampaignCreated(record)
    #expect(state.coupons.capacity >= 50_000)
    #expect(state.campaigns[Int(small)].issueOrder.capacity >= 50_000)
    #expect(state.userHeads.capacity >= 50_000)
    record.id = "huge"
    record.stock = 1_000_000_000
    let huge = state.applyCampaignCreated(record)
    #expect(state.campaigns[Int(huge)].issueOrder.capacity >= StoreState.reservedCouponsMax)
    #expect(state.campaigns[Int(huge)].issueOrder.capacity < 2 * StoreState.reservedCouponsMax)
    #expect(state.coupons.capacity >= StoreState.reservedCouponsMax)
  }
}
