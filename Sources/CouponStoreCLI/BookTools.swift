import CouponStore
import Foundation

/// `inspect DIR --code CODE` and `import DIR --campaign ID FILE`.
enum BookTools {
  /// Prints one coupon and its history, from a read-only replay of DIR.
  static func inspectCoupon(_ arguments: [String]) throws -> Int32 {
    let usage = "couponstore inspect DIR --code CODE"
    var rest = arguments
    let code = try take("--code", from: &rest, usage: usage)
    let directory = try Tools.directoryArgument(rest, usage: usage)
    guard let details = try CouponStore.inspectCoupon(directory: directory, code: code) else {
      print("no coupon has the code \"\(code)\"")
      return 1
    }
    let coupon = details.coupon
    var state = coupon.state.description
    if let expiry = coupon.lockExpiresAt {
      state += ", until \(timestamp(expiry))"
      if expiry <= Date() { state += " (run out; the next request to the store records it)" }
    }
    print("code         \(coupon.code)")
    print("campaign     \(coupon.campaign)")
    print("state        \(state)")
    print("owner        \(coupon.user ?? "(anonymous)")")
    print("issued       \(coupon.issuedAt.map(timestamp) ?? "-")")
    print("redemptions  \(coupon.redemptions) of \(details.redemptionsMax)")
    print("")
    print("history")
    if details.history.isEmpty { print("  (none: available in its pool)") }
    for event in details.history {
      print(
        "  \(timestamp(event.time))  \(Tools.pad(event.kind.description, 11)) "
          + (event.user ?? "(anonymous)"))
    }
    return 0
  }

  /// Uploads the codes of FILE (one per line) to the pool of a campaign, with a progress line.
  static func importCodes(_ arguments: [String]) async throws -> Int32 {
    let usage = "couponstore import DIR --campaign ID FILE"
    var rest = arguments
    let campaign = try take("--campaign", from: &rest, usage: usage)
    guard rest.count == 2 else { throw UsageError(message: "usage: \(usage)") }
    let directory = try Tools.directoryArgument([rest[0]], usage: usage)
    let file = rest[1]
    guard let data = FileManager.default.contents(atPath: file) else {
      throw UsageError(message: "cannot read \(file)")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw UsageError(message: "\(file) is not UTF-8 text")
    }
    // By Character: "\r\n" is one Character, and a newline, so Windows line ends split too.
    var codes = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map {
      String($0)
    }
    if codes.last == "" { codes.removeLast() }  // the newline that ends the last line

    let store = try await CouponStore.open(directory: directory)
    let result: AddCodesResult
    do {
      result = try await store.addCodes(codes, to: campaign) { progress in
        guard progress.codesTotal > 0 else { return }
        let line = String(
          format: "\rimporting: %5.1f%% (%d of %d codes)",
          Double(progress.codesDone) * 100 / Double(progress.codesTotal), progress.codesDone,
          progress.codesTotal)
        FileHandle.standardError.write(Data(line.utf8))
      }
      ProgressLine.finish()
    } catch {
      ProgressLine.finish()
      try? await store.close()
      throw error
    }
    let stock = try await store.campaign(campaign)?.stock ?? 0
    try await store.close()
    print("added \(result.added) of \(codes.count) codes to \(campaign) (stock now \(stock))")
    if !result.rejected.isEmpty {
      print("rejected \(result.rejected.count):")
      for rejection in result.rejected.prefix(20) {
        print("  \"\(rejection.code)\": \(rejection.reason)")
      }
      if result.rejected.count > 20 { print("  … and \(result.rejected.count - 20) more") }
    }
    return 0
  }

  /// Removes `flag VALUE` from `arguments` and returns VALUE.
  static func take(_ flag: String, from arguments: inout [String], usage: String) throws -> String {
    guard let index = arguments.firstIndex(of: flag), index + 1 < arguments.count else {
      throw UsageError(message: "usage: \(usage)")
    }
    let value = arguments[index + 1]
    arguments.removeSubrange(index...index + 1)
    return value
  }

  static func timestamp(_ date: Date) -> String {
    date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
  }
}
