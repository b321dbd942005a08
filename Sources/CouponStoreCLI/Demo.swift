import CouponStore
import Foundation

/// `couponstore demo`: a flash sale against a real store, verified end to end.
enum Demo {
  struct Settings {
    var directory: String?
    var users = 100_000
    var stock = 10_000
    var keep = false
  }

  static func parse(_ arguments: [String]) throws -> Settings {
    var settings = Settings()
    var index = 0
    func value() throws -> String {
      index += 1
      guard index < arguments.count else {
        throw UsageError(message: "\(arguments[index - 1]) needs a value")
      }
      return arguments[index]
    }
    func number() throws -> Int {
      let text = try value()
      guard let number = Int(text), number > 0 else {
        throw UsageError(message: "expected a positive number, got \"\(text)\"")
      }
      return number
    }
    while index < arguments.count {
      switch arguments[index] {
      case "--dir": settings.directory = try value()
      case "--users": settings.users = try number()
      case "--stock": settings.stock = try number()
      case "--keep": settings.keep = true
      case let other: throw UsageError(message: "unknown option \"\(other)\"")
      }
      index += 1
    }
    return settings
  }

  static func run(_ arguments: [String]) async throws -> Int32 {
    let settings = try parse(arguments)
    let directory =
      settings.directory
      ?? NSTemporaryDirectory() + "couponstore-demo-\(UUID().uuidString.prefix(8))"
    guard !FileManager.default.fileExists(atPath: directory) else {
      throw UsageError(message: "\(directory) already exists; the demo needs a fresh directory")
    }
    defer {
      if !settings.keep { try? FileManager.default.removeItem(atPath: directory) }
    }
    var failures: [String] = []
    func check(_ condition: Bool, _ what: String) {
      print("  \(condition ? "ok  " : "FAIL") \(what)")
      if !condition { failures.append(what) }
    }

    print(
      "CouponStore demo: a flash sale of \(settings.stock) coupons, \(settings.users) concurrent claimants"
    )
    print("store: \(directory)")
    var store = try await CouponStore.open(directory: directory)
    let campaign = try await store.createCampaign(
      CampaignSpec(
        id: "flash-sale", name: "Flash sale", stock: settings.stock,
        codes: .generated(.hangulDigits)))

    let sale = store
    let started = DispatchTime.now()
    let results = try await withThrowingTaskGroup(of: (String, ClaimResult).self) { group in
      for user in 0..<settings.users {
        group.addTask {
          let name = "user_\(user)"
          return (name, try await sale.claim(campaign: campaign.id, user: name))
        }
      }
      var results: [(String, ClaimResult)] = []
      results.reserveCapacity(settings.users)
      for try await result in group { results.append(result) }
      return results
    }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
    let won = results.compactMap { user, result in result.coupon.map { (user, $0) } }
    let soldOut = results.filter { $0.1 == .soldOut }.count
    print("")
    print(
      "sale: \(won.count) claimed, \(soldOut) sold out, in \(String(format: "%.3f", seconds)) s")
    print(
      "      \(Int(Double(settings.users) / seconds)) durable claim decisions/s "
        + "(every answer returned after fdatasync)")
    if let sample = won.first { print("      e.g. \(sample.0) got \(sample.1.code)") }

    let claimsBefore = try await allClaims(store, campaign.id)
    try await store.close()
    print("")
    print("closed; reopening…")
    store = try await CouponStore.open(directory: directory)
    print(
      "reopened in \(String(format: "%.3f", store.recovery.seconds)) s, "
        + "\(store.recovery.recordsReplayed) records replayed")
    let claimsAfter = try await allClaims(store, campaign.id)
    let reopened = try await store.campaign(campaign.id)
    print("")
    print("checks:")
    check(won.count == settings.stock, "exactly \(settings.stock) coupons claimed (never oversold)")
    check(soldOut == settings.users - settings.stock, "every other claimant was told sold out")
    check(Set(won.map(\.0)).count == won.count, "one coupon per user")
    check(Set(won.map(\.1.code)).count == won.count, "all codes distinct")
    check(
      reopened?.issued == settings.stock && reopened?.remaining == 0,
      "issued = stock after reopening")
    check(claimsAfter == claimsBefore, "claims identical after reopening")
    check(
      Set(claimsAfter.map(\.code)) == Set(won.map(\.1.code)),
      "every acknowledged claim survived the restart")
    let late = try await store.claim(campaign: campaign.id, user: "latecomer")
    check(late == .soldOut, "a claim after reopening is sold out")
    try await store.close()
    let inspection = try CouponStore.inspect(directory: directory)
    check(inspection.problems.isEmpty, "verify finds every checksum and invariant intact")
    print("")
    print(failures.isEmpty ? "demo passed" : "demo FAILED: \(failures.count) check(s)")
    return failures.isEmpty ? 0 : 1
  }

  static func allClaims(_ store: CouponStore, _ campaign: CampaignID) async throws -> [ClaimRecord]
  {
    var claims: [ClaimRecord] = []
    var cursor: ClaimCursor?
    repeat {
      guard let page = try await store.claims(of: campaign, after: cursor, limit: 10_000) else {
        break
      }
      claims += page.claims
      cursor = page.next
    } while cursor != nil
    return claims
  }
}
