// api-sequence: fuzz bytes → a sequence of API calls on a real store and on the reference model.
//
// The store runs with all of its machinery (validation, the writer and syncer threads, group
// commit, the log, recovery on every reopen) on an in-memory file system, with a clock the input
// moves. The reference model (Model.swift) says what every call must return. Any difference, and
// any broken invariant, is a finding:
// - every answer (value or typed error) matches the model, field by field;
// - a claimed coupon's code has the campaign's pattern and is new to the whole store;
// - reads after every reopen equal the model (recovery is exact), `inspect` finds no invariant
//   violation, `dump` prints one line per log record, and the log holds exactly the records the
//   model says were written (a rejection without a request id writes nothing);
// - after tampering with the files (Operation.swift, `Tamper`) the store opens or refuses with
//   a typed error, keeps its invariants, and still works.

import CouponLog
import Foundation
import Synchronization

@testable import CouponStore

/// The clock of a run: milliseconds the input moves forward (and, now and then, back).
final class FuzzClock: Sendable {
  private let millis: Mutex<Int64>

  init(millis: Int64) { self.millis = Mutex(millis) }

  var date: Date { Date(timeIntervalSince1970: Double(millis.withLock { $0 }) / 1000) }

  func advance(_ delta: Int64) { millis.withLock { $0 += delta } }

  var function: @Sendable () -> Date { { [self] in date } }
}

enum APISequenceFuzzer {
  static let directory = "/store"
  static let stepsMax = 48

  static func run(_ data: [UInt8]) async throws {
    var run = APISequenceRun(data)
    try await run.start()
    try await run.go()
  }
}

/// One run: the input, the store, the model.
struct APISequenceRun {
  var input: FuzzInput
  let disk = FuzzDisk.make()
  let clock = FuzzClock(millis: 1_800_000_000_000)
  var options = CouponStore.Options()
  var model: Model
  var store: CouponStore?

  init(_ data: [UInt8]) {
    input = FuzzInput(data)
    let window = input.pick([0, 1, 2, 3, 1_000_000])
    options.requestIDWindow = window
    options.durability = input.byte() == 0xFF ? .synchronous : .noSync
    options.batchBytesMax = 64 << 10
    options.fileSystem = disk
    options.clock = clock.function
    model = Model(window: window, now: Model.millis(clock.date))
  }

  mutating func start() async throws {
    FuzzLog.line(
      "api-sequence window=\(options.requestIDWindow) durability=\(options.durability) "
        + "input=\(input.bytes.count)B")
    store = try await CouponStore.open(directory: APISequenceFuzzer.directory, options: options)
    model.segments.insert(1)
  }

  mutating func go() async throws {
    var step = 0
    var lastWrite: Operation?
    while !input.isExhausted, step < APISequenceFuzzer.stepsMax {
      let operation = Operation.decode(&input, model: model, lastWrite: lastWrite)
      if operation.isWrite { lastWrite = operation }
      FuzzLog.line("  \(step): \(operation)")
      if case .tamper(let tamper) = operation {
        try await self.tamper(tamper)
        return
      }
      do {
        try await perform(operation)
      } catch let finding as FuzzFinding {
        throw FuzzFinding(message: "step \(step), \(operation): \(finding.message)")
      }
      step += 1
    }
    try await compareAll()
    try await reopen(window: model.window, inspecting: true)
    try await store!.close()
  }

  // MARK: Operations

  mutating func perform(_ operation: Operation) async throws {
    let store = self.store!
    // The operation itself is named when a finding is reported (describing it on every call
    // would cost more than the call).
    let what = "answer"
    switch operation {
    case .create(let spec, let requestID):
      let expected = model.create(spec, requestID: requestID)
      let result = await outcome { () async throws(CouponStoreError) in
        try await store.createCampaign(spec, requestID: requestID)
      }
      switch (expected, result) {
      case (.error(let code, let fields), .failure(let error)):
        try check(error, code, fields, what)
      case (.value(let index?), .success(let campaign)):
        try checkCampaign(campaign, index, what)
      case (.value(nil), .success(let campaign)):
        if let id = spec.id {
          try fuzzCheck(
            Array(campaign.id.utf8) == Array(id.utf8), "\(what): id \(campaign.id.debugDescription)"
          )
        } else {
          try fuzzCheck(
            campaign.id.utf8.count == 8
              && campaign.id.utf8.allSatisfy {
                (0x30...0x39).contains($0) || (0x61...0x66).contains($0)
              }
              && !model.campaigns.contains { $0.id == campaign.id },
            "\(what): generated id \(campaign.id.debugDescription)")
        }
        model.created(campaign.id, spec, requestID: requestID)
        try checkCampaign(campaign, model.campaigns.count - 1, what)
      default:
        throw FuzzFinding(message: "\(what): \(result), model expects \(expected)")
      }

    case .claim(let campaign, let user, let requestID):
      let bad = model.claimArgumentsProblems(campaign: campaign, user: user, requestID: requestID)
      let result = await outcome { () async throws(CouponStoreError) in
        try await store.claim(campaign: campaign, user: user, requestID: requestID)
      }
      if !bad.isEmpty { return try expectError(result, .invalidArgument, bad, what) }
      if case .conflict = model.lookUp(requestID, Model.claimKey(campaign, user)) {
        return try expectError(result, .requestIDConflict, [], what)
      }
      let decision = model.claim(campaign: campaign, user: user, requestID: requestID)
      try compare(result.get(what), decision, what)

    case .claimCode(let code, let user, let requestID):
      var bad = model.claimArgumentsProblems(campaign: "c", user: user, requestID: requestID)
      if !Model.codeLookupOK(code) { bad.insert("code") }
      let result = await outcome { () async throws(CouponStoreError) in
        try await store.claim(code: code, user: user, requestID: requestID)
      }
      if !bad.isEmpty { return try expectError(result, .invalidArgument, bad, what) }
      if case .conflict = model.lookUp(requestID, Model.claimCodeKey(code, user)) {
        return try expectError(result, .requestIDConflict, [], what)
      }
      let decision = model.claimCode(code, user: user, requestID: requestID)
      try compare(result.get(what), decision, what)

    case .batch(let claims):
      let result = await outcome { () async throws(CouponStoreError) in
        try await store.claim(batch: claims)
      }
      for claim in claims {
        let bad = model.claimArgumentsProblems(
          campaign: claim.campaign, user: claim.user, requestID: claim.requestID)
        if !bad.isEmpty { return try expectError(result, .invalidArgument, bad, what) }
      }
      if model.batchConflicts(claims) {
        return try expectError(result, .requestIDConflict, [], what)
      }
      let results = try result.get(what)
      try fuzzCheck(results.count == claims.count, "\(what): \(results.count) results")
      for (claim, result) in zip(claims, results) {
        let decision = model.claim(
          campaign: claim.campaign, user: claim.user, requestID: claim.requestID)
        try compare(result, decision, what)
      }

    case .readCampaign(let id):
      let result = await outcome { () async throws(CouponStoreError) in
        try await store.campaign(id)
      }
      if !Model.textOK(id, max: 64) {
        return try expectError(result, .invalidArgument, ["campaign"], what)
      }
      let index = model.campaigns.firstIndex { $0.id == id }
      switch (try result.get(what), index) {
      case (nil, nil): break
      case (let campaign?, let index?): try checkCampaign(campaign, index, what)
      case (let campaign, _):
        throw FuzzFinding(
          message: "\(what): \(String(describing: campaign)), model: \(index ?? -1)")
      }

    case .readCampaigns:
      try await checkCampaigns(what)

    case .readClaims(let campaign, let after, let limit):
      let cursor = after.map { ClaimCursor(position: $0) }
      let result = await outcome { () async throws(CouponStoreError) in
        try await store.claims(of: campaign, after: cursor, limit: limit)
      }
      var bad: Set<String> = []
      if !Model.textOK(campaign, max: 64) { bad.insert("campaign") }
      if !(1...100_000).contains(limit) { bad.insert("limit") }
      if let after, after < 0 { bad.insert("cursor") }
      if !bad.isEmpty { return try expectError(result, .invalidArgument, bad, what) }
      let page = try result.get(what)
      guard let index = model.campaigns.firstIndex(where: { $0.id == campaign }) else {
        return try fuzzCheck(page == nil, "\(what): a page of a campaign that does not exist")
      }
      try checkPage(page, model.page(index, after: after ?? 0, limit: limit), what)

    case .readCoupons(let user):
      let result = await outcome { () async throws(CouponStoreError) in
        try await store.coupons(of: user)
      }
      if !Model.textOK(user, max: 128) {
        return try expectError(result, .invalidArgument, ["user"], what)
      }
      try checkCoupons(try result.get(what), model.couponsOf(user), what)

    case .readCoupon(let code):
      let result = await outcome { () async throws(CouponStoreError) in
        try await store.coupon(code: code)
      }
      let coupon = try result.get(what)
      try checkCoupons(coupon.map { [$0] } ?? [], model.coupon(code: code).map { [$0] } ?? [], what)

    case .statistics:
      try await checkStatistics(what)

    case .advanceClock(let milliseconds):
      clock.advance(milliseconds)
      model.now = Model.millis(clock.date)

    case .reopen(let window):
      try await reopen(window: window)

    case .tamper:
      preconditionFailure("tamper ends the run and is handled by go()")
    }
  }

  // MARK: Reopening

  /// Closes the store, checks the closed store refuses calls, inspects the directory read-only
  /// (at the end of a run: each inspection is one more recovery), reopens with request-id window
  /// `window`, and compares everything with the model.
  mutating func reopen(window: Int, inspecting: Bool = false) async throws {
    let old = store!
    try await old.close()
    let refused = await outcome { () async throws(CouponStoreError) in try await old.statistics() }
    try expectError(refused, .closed, [], "statistics() after close()")
    if inspecting { try inspect() }
    options.requestIDWindow = window
    store = nil
    let reopened = try await CouponStore.open(
      directory: APISequenceFuzzer.directory, options: options)
    store = reopened
    model.reopened(window: window)
    let summary = reopened.recovery
    try fuzzCheck(
      summary.recordsReplayed == Int(model.events) && summary.lastSequence == model.events
        && summary.tornTailBytesCut == 0 && summary.salvagedBytesDropped == 0,
      "reopen: \(summary), model: \(model.events) records")
    try await compareAll()
  }

  /// `inspect` and `dump` of the closed store's directory agree with the model.
  func inspect() throws {
    let inspection = try CouponStore.inspect(
      directory: APISequenceFuzzer.directory, fileSystem: disk)
    try fuzzCheck(inspection.problems.isEmpty, "inspect: \(inspection.problems)")
    try fuzzCheck(inspection.tornTailBytes == 0, "inspect: a torn tail after a clean close")
    let statistics = inspection.statistics
    try fuzzCheck(
      statistics.campaigns == model.campaigns.count && statistics.issued == model.coupons.count
        && statistics.users == model.users && statistics.lastSequence == model.events,
      "inspect: \(statistics), model: \(model.campaigns.count) campaigns, "
        + "\(model.coupons.count) coupons, \(model.users) users, \(model.events) records")
    for (index, campaign) in inspection.campaigns.enumerated() {
      try checkCampaign(campaign, index, "inspect")
    }
    var lines = 0
    try CouponStore.dump(directory: APISequenceFuzzer.directory, fileSystem: disk) { _ in
      lines += 1
    }
    try fuzzCheck(lines == Int(model.events), "dump printed \(lines) lines for \(model.events)")
  }

  /// Damages the closed store's directory and reopens it: the model no longer applies, but the
  /// store must open or refuse with a typed error, keep its invariants and keep working.
  mutating func tamper(_ tamper: Tamper) async throws {
    try await store!.close()
    store = nil
    let directory = APISequenceFuzzer.directory
    let segments = disk.allFiles().filter { $0.path.hasSuffix(".seg") }
    switch tamper.kind {
    case .appendToLast(let bytes):
      if let last = segments.last { disk.setContents(of: last.path, to: last.bytes + bytes) }
    case .flipBit(let segment, let offset, let bit):
      if !segments.isEmpty {
        var file = segments[segment % segments.count]
        if !file.bytes.isEmpty {
          file.bytes[offset % file.bytes.count] ^= 1 << bit
          disk.setContents(of: file.path, to: file.bytes)
        }
      }
    case .truncateLast(let count):
      if let last = segments.last {
        disk.setContents(of: last.path, to: Array(last.bytes.dropLast(count)))
      }
    case .addFile(let name, let bytes):
      if !name.isEmpty, !name.contains("/") {
        disk.setContents(of: directory + "/" + name, to: bytes)
      }
    case .replaceAll(let files):
      for file in disk.allFiles() where file.path.hasPrefix(directory + "/") {
        try disk.removeFile(file.path)
      }
      for file in files where !file.name.isEmpty && !file.name.contains("/") {
        disk.setContents(of: directory + "/" + file.name, to: file.bytes)
      }
    }
    options.salvage = input.bool()
    let opened = await outcome { () async throws(CouponStoreError) in
      try await CouponStore.open(directory: directory, options: options)
    }
    let reopened: CouponStore
    switch opened {
    case .success(let store): reopened = store
    case .failure(let error):
      let allowed: [CouponStoreError.Code] = [.corruption, .unrecognizedFile]
      try fuzzCheck(
        allowed.contains(error.code), "open after \(tamper): \(error.code): \(error.message)")
      return
    }
    FuzzLog.line("  opened after tampering: \(reopened.recovery)")
    // Whatever it recovered must be consistent, and the store must go on working.
    let campaign = try await reopened.createCampaign(CampaignSpec(name: "after", stock: 1))
    _ = try await reopened.claim(campaign: campaign.id, user: "u1")
    for (index, existing) in try await reopened.campaigns().enumerated() {
      // The recovered log may remember any request id: a conflict is a fair answer.
      let claimed = await outcome { () async throws(CouponStoreError) in
        try await reopened.claim(campaign: existing.id, user: "u2", requestID: "t\(index)")
      }
      if case .failure(let error) = claimed, error.code != .requestIDConflict {
        throw FuzzFinding(message: "claim after tampering: \(error.code): \(error.message)")
      }
    }
    let statistics = try await reopened.statistics()
    try await reopened.close()
    let inspection = try CouponStore.inspect(directory: directory, fileSystem: disk)
    try fuzzCheck(inspection.problems.isEmpty, "after tampering: \(inspection.problems)")
    try fuzzCheck(
      inspection.statistics.issued == statistics.issued
        && inspection.statistics.lastSequence == statistics.lastSequence,
      "after tampering: inspect \(inspection.statistics), store \(statistics)")
    options.salvage = false
    let again = try await CouponStore.open(directory: directory, options: options)
    try fuzzCheck(
      again.recovery.lastSequence == statistics.lastSequence,
      "after tampering, the second reopen recovered \(again.recovery), the store had \(statistics)")
    try await again.close()
  }

  // MARK: Comparisons

  /// Every read the store offers, against the model.
  func compareAll() async throws {
    try await checkCampaigns("campaigns()")
    for index in model.campaigns.indices {
      let page = try await store!.claims(of: model.campaigns[index].id, limit: 100_000)
      try checkPage(page, model.page(index, after: 0, limit: 100_000), "claims(of:)")
    }
    for user in Set(model.coupons.compactMap(\.user)) {
      try checkCoupons(try await store!.coupons(of: user), model.couponsOf(user), "coupons(of:)")
    }
    try await checkStatistics("statistics()")
  }

  func checkCampaigns(_ what: String) async throws {
    let campaigns = try await store!.campaigns()
    try fuzzCheck(
      campaigns.count == model.campaigns.count,
      "\(what): \(campaigns.count) campaigns, model \(model.campaigns.count)")
    for (index, campaign) in campaigns.enumerated() { try checkCampaign(campaign, index, what) }
  }

  func checkStatistics(_ what: String) async throws {
    let statistics = try await store!.statistics()
    let expectedStates: [CouponState: Int] = [
      .available: 0, .assigned: model.coupons.count, .locked: 0, .redeemed: 0,
    ]
    try fuzzCheck(
      statistics.campaigns == model.campaigns.count && statistics.coupons == model.coupons.count
        && statistics.issued == model.coupons.count && statistics.users == model.users
        && statistics.couponsByState == expectedStates
        && statistics.requestIDs == model.remembered.count
        && statistics.lastSequence == model.events
        && statistics.segments == model.segments.count && statistics.logBytes > 0,
      "\(what): \(statistics); model: \(model.campaigns.count) campaigns, \(model.coupons.count) "
        + "coupons, \(model.users) users, \(model.remembered.count) request ids, "
        + "\(model.events) records, \(model.segments.count) segments")
  }

  func checkCampaign(_ campaign: Campaign, _ index: Int, _ what: String) throws {
    let entry = model.campaigns[index]
    let spec = entry.spec
    let lockTimeout = Double(Int64((spec.lockTimeout * 1000).rounded())) / 1000
    try fuzzCheck(
      Array(campaign.id.utf8) == Array(entry.id.utf8)
        && Array(campaign.name.utf8) == Array(spec.name.utf8)
        && campaign.stock == model.stock(of: index) && campaign.issued == entry.issued.count
        && Model.returned(campaign.startsAt) == Model.millis(spec.startsAt)
        && campaign.endsAt.map(Model.returned) == spec.endsAt.map(Model.millis)
        && campaign.perUserLimit == spec.perUserLimit
        && campaign.redemptionsPerCoupon == spec.redemptionsPerCoupon
        && campaign.codes == spec.codes && campaign.lockTimeout == lockTimeout
        && campaign.expiresAt.map(Model.returned) == spec.expiresAt.map(Model.millis)
        && Model.returned(campaign.createdAt) == entry.createdAt,
      "\(what): campaign \(campaign); model: \(entry), stock \(model.stock(of: index))")
  }

  func checkPage(_ page: ClaimPage?, _ expected: ClaimPage, _ what: String) throws {
    guard let page else { throw FuzzFinding(message: "\(what): no page for an existing campaign") }
    try fuzzCheck(
      page.next == expected.next && page.claims.count == expected.claims.count
        && zip(page.claims, expected.claims).allSatisfy { claim, model in
          Array(claim.code.utf8) == Array(model.code.utf8)
            && claim.user.map { Array($0.utf8) } == model.user.map { Array($0.utf8) }
            && Model.returned(claim.claimedAt) == Model.returned(model.claimedAt)
        },
      "\(what): \(page); model \(expected)")
  }

  func checkCoupons(_ coupons: [Coupon], _ expected: [Coupon], _ what: String) throws {
    try fuzzCheck(
      coupons.count == expected.count && zip(coupons, expected).allSatisfy(Self.same),
      "\(what): \(coupons); model \(expected)")
  }

  static func same(_ coupon: Coupon, _ model: Coupon) -> Bool {
    Array(coupon.code.utf8) == Array(model.code.utf8)
      && Array(coupon.campaign.utf8) == Array(model.campaign.utf8)
      && coupon.user.map { Array($0.utf8) } == model.user.map { Array($0.utf8) }
      && coupon.state == model.state && coupon.redemptions == model.redemptions
      && coupon.issuedAt.map(Model.returned) == model.issuedAt.map(Model.returned)
      && coupon.lockExpiresAt == model.lockExpiresAt
  }

  /// Compares a claim's answer with the model's decision, and applies an issued coupon.
  mutating func compare(_ result: ClaimResult, _ decision: ClaimDecision, _ what: String) throws {
    switch decision {
    case .answer(let expected):
      let matches: Bool
      switch (result, expected) {
      case (.claimed(let coupon), .claimed(let model)): matches = Self.same(coupon, model)
      case (.limitReached(let held), .limitReached(let model)):
        matches = held.count == model.count && zip(held, model).allSatisfy(Self.same)
      default: matches = result == expected
      }
      try fuzzCheck(matches, "\(what): \(result), model: \(expected)")
    case .issue(let campaign, let user, let tag):
      guard case .claimed(let coupon) = result else {
        throw FuzzFinding(message: "\(what): \(result), model: a new coupon")
      }
      let entry = model.campaigns[campaign]
      let expected = Coupon(
        code: coupon.code, campaign: entry.id, user: user, state: .assigned,
        issuedAt: Date(timeIntervalSince1970: Double(model.now) / 1000), redemptions: 0,
        lockExpiresAt: nil)
      try fuzzCheck(Self.same(coupon, expected), "\(what): \(coupon), model: \(expected)")
      try fuzzCheck(
        !model.codes.contains(Array(coupon.code.utf8)), "\(what): code \(coupon.code) issued twice")
      if case .generated(let pattern) = entry.spec.codes {
        try fuzzCheck(
          Model.matches(coupon.code, pattern), "\(what): code \(coupon.code) is not of \(pattern)")
      }
      model.issued(coupon.code, campaign: campaign, user: user, tag: tag)
    }
  }

  func check(
    _ error: CouponStoreError, _ code: CouponStoreError.Code, _ fields: Set<String>,
    _ what: String
  ) throws {
    try fuzzCheck(
      error.code == code, "\(what): error \(error.code) (\(error.message)), model: \(code)")
    if code == .invalidArgument {
      let field = error.field ?? "<none>"
      let base = String(field.split(separator: ".").first ?? "")
      try fuzzCheck(
        fields.contains(field) || fields.contains(base),
        "\(what): invalid \(field) (\(error.message)), model: one of \(fields.sorted())")
    }
  }

  func expectError<T>(
    _ result: Result<T, CouponStoreError>, _ code: CouponStoreError.Code, _ fields: Set<String>,
    _ what: String
  ) throws {
    guard case .failure(let error) = result else {
      throw FuzzFinding(message: "\(what): \(result), model: error \(code) \(fields.sorted())")
    }
    try check(error, code, fields, what)
  }
}

/// The outcome of a store call, as a value.
func outcome<T>(_ body: () async throws(CouponStoreError) -> T) async -> Result<
  T, CouponStoreError
> {
  do {
    return .success(try await body())
  } catch {
    return .failure(error)
  }
}

extension Result where Failure == CouponStoreError {
  /// The value, or a finding naming the call that failed unexpectedly.
  func get(_ what: String) throws -> Success {
    switch self {
    case .success(let value): return value
    case .failure(let error):
      throw FuzzFinding(message: "\(what): unexpected error \(error.code): \(error.message)")
    }
  }
}
