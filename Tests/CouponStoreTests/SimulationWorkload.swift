// The simulator's workload: seeded callers that create campaigns, claim (alone, anonymously, in
// batches, with request ids and retries) and read, recording what they learn.
//
// Each caller draws from its own generator, split from the scenario's, so its sequence of calls
// depends only on the seed and on what it was told; several callers run as concurrent tasks and
// the writer serialises them in whatever order they arrive. A caller stops at its first error:
// from then on the store must refuse everything (fail-stop), which the fail-at-N loop checks.

import CouponSimulation
import Foundation

@testable import CouponStore

/// What one caller knows when it starts.
struct WorkerPlan: Sendable {
  var life: Int
  var worker: Int
  var calls: Int
  var now: Int64
  /// Campaign ids known to exist (acknowledged), and some that were never created.
  var campaigns: [String]
  /// Acknowledged request ids that may be retried, with what they must answer.
  var retriable: [(call: ClaimCall, outcome: ClaimOutcome)]
  /// Whether the caller also issues large anonymous batches (to fill and roll segments).
  var bulk: Bool
  /// Set for a lone caller: every answer is predicted by the model.
  var predictor: SimulationModel?
}

/// What one caller did and learned.
struct WorkerLog: Sendable {
  var events: [SimulationEvent] = []
  var violations: [String] = []
  /// The error that stopped the caller, if any.
  var error: CouponStoreError?
  /// Calls made, the failed one included.
  var callsMade = 0
}

enum SimulationWorkload {
  static let users = (0..<6).map { "u\($0)" }
  static let bulkCampaign = "bulk"

  /// A campaign spec: small stocks and limits so that sold-out and limit answers are common,
  /// and now and then a window that has not started or has ended.
  static func spec(id: String?, name: String, now: Int64, random: inout SimulationRandom)
    -> CampaignSpec
  {
    var spec = CampaignSpec(
      id: id, name: name, stock: random.int(in: 0...8), perUserLimit: random.int(in: 1...3))
    switch random.below(10) {
    case 0:
      spec.startsAt = Date(millis: now + 3_600_000)
    case 1:
      spec.startsAt = Date(millis: now - 7_200_000)
      spec.endsAt = Date(millis: now - 60_000)
    default:
      break
    }
    return spec
  }

  /// Runs one caller against `store` and returns its log. Never throws: errors are recorded.
  static func run(_ plan: WorkerPlan, store: CouponStore, random: SimulationRandom) async
    -> WorkerLog
  {
    var random = random
    var log = WorkerLog()
    var model = plan.predictor
    var campaigns = plan.campaigns
    var retriable = plan.retriable
    let tag = "L\(plan.life)w\(plan.worker)"

    func note(_ events: [SimulationEvent]) {
      log.events += events
      if model != nil { log.violations += model!.learn(events) }
    }
    func randomUser() -> String? {
      random.chance(0.15) ? nil : random.element(of: users)!
    }
    func randomCampaign() -> String {
      random.chance(0.08) ? "missing-\(random.below(3))" : random.element(of: campaigns) ?? "none"
    }
    /// Checks an answer against the prediction (one caller) or against what holds under any
    /// interleaving (several).
    func check(_ call: ClaimCall, _ result: ClaimResult) {
      if let model, let problem = model.mismatch(call, result, now: plan.now) {
        log.violations.append("wrong answer: " + problem)
      }
      switch result {
      case .claimed(let coupon):
        if coupon.campaign != call.campaign || coupon.user != call.user
          || coupon.state != .assigned
        {
          log.violations.append("\(call) returned the foreign coupon \(coupon)")
        }
      case .limitReached(let existing):
        if existing.isEmpty
          || existing.contains(where: {
            $0.campaign != call.campaign || $0.user != call.user || call.user == nil
          })
        {
          log.violations.append("\(call) answered limitReached with \(existing)")
        }
      case .campaignNotFound:
        if plan.campaigns.contains(call.campaign) && call.requestID == nil {
          log.violations.append("\(call): campaignNotFound for an acknowledged campaign")
        }
      default:
        break
      }
    }

    for index in 0..<plan.calls {
      log.callsMade += 1
      let id = "\(tag)-\(index)"
      // What the model must count as in flight if the call fails.
      var inFlight: [SimulationEvent] = []
      do throws(CouponStoreError) {
        switch random.below(100) {
        case 0..<40:
          let call = ClaimCall(
            campaign: randomCampaign(), user: randomUser(),
            requestID: random.chance(0.3) ? "r-\(id)" : nil)
          inFlight = [.claimed(call, nil)]
          let result = try await store.claim(
            campaign: call.campaign, user: call.user, requestID: call.requestID)
          check(call, result)
          note([.claimed(call, result)])
          if call.requestID != nil { retriable.append((call, ClaimOutcome(result))) }
        case 40..<52:
          let calls = (0..<random.int(in: 1...6)).map { position in
            ClaimCall(
              campaign: randomCampaign(), user: randomUser(),
              requestID: random.chance(0.2) ? "r-\(id)-\(position)" : nil)
          }
          inFlight = calls.map { .claimed($0, nil) }
          let results = try await store.claim(
            batch: calls.map {
              ClaimRequest(campaign: $0.campaign, user: $0.user, requestID: $0.requestID)
            })
          if results.count != calls.count {
            log.violations.append("a batch of \(calls.count) got \(results.count) answers")
          }
          for (call, result) in zip(calls, results) {
            check(call, result)
            note([.claimed(call, result)])
          }
        case 52..<62:
          // A retry of an acknowledged request changes nothing, so it is never in flight.
          guard let (call, outcome) = random.element(of: retriable) else { continue }
          let result = try await store.claim(
            campaign: call.campaign, user: call.user, requestID: call.requestID)
          if ClaimOutcome(result) != outcome {
            log.violations.append(
              "retry of \(call) answered \(ClaimOutcome(result)), first answer \(outcome)")
          }
          check(call, result)
          note([.claimed(call, result)])
        case 62..<72:
          let spec = spec(
            id: random.chance(0.85) ? "c-\(id)" : nil, name: "n\(index)", now: plan.now,
            random: &random)
          inFlight = [.created(spec, nil)]
          let campaign = try await store.createCampaign(spec)
          if let expected = spec.id, campaign.id != expected {
            log.violations.append("created \(expected) but got \(campaign.id)")
          }
          if campaign.issued != 0 || campaign.stock != spec.stock {
            log.violations.append("new campaign \(campaign) does not match \(spec)")
          }
          note([.created(spec, campaign)])
          campaigns.append(campaign.id)
        case 72..<84:
          let user = random.element(of: users)!
          let coupons = try await store.coupons(of: user)
          if coupons.contains(where: { $0.user != user }) {
            log.violations.append("coupons(of: \(user)) returned another user's coupon")
          }
          if let model {
            let expected = Set(model.coupons.filter { $0.value.user == user }.map(\.key))
            if Set(coupons.map(\.code)) != expected {
              log.violations.append(
                "coupons(of: \(user)) returned \(coupons.map(\.code).sorted()), the model has "
                  + "\(expected.sorted())")
            }
          }
          note([.seen(coupons.map { ($0.code, CouponFacts(campaign: $0.campaign, user: $0.user)) })]
          )
        case 84..<92 where plan.bulk:
          // A large anonymous batch: fills segments quickly so that they roll mid-scenario.
          let calls = Array(
            repeating: ClaimCall(campaign: bulkCampaign, user: nil, requestID: nil),
            count: random.int(in: 2_000...6_000))
          inFlight = calls.map { .claimed($0, nil) }
          let results = try await store.claim(
            batch: calls.map { ClaimRequest(campaign: $0.campaign, user: nil) })
          for (call, result) in zip(calls, results) {
            check(call, result)
            note([.claimed(call, result)])
          }
        // HOOK(snapshots): once `CouponStore.snapshot()` exists, give it a slice of the range
        // above (`try await store.snapshot()`, nothing in flight: it changes no business state),
        // and add `snapshot-` files to the bit-flip candidates in SimulationDriver.runBitFlip.
        default:
          let campaign = randomCampaign()
          if let page = try await store.claims(of: campaign, limit: 50) {
            let seen = page.claims.map { ($0.code, CouponFacts(campaign: campaign, user: $0.user)) }
            if let model, page.next == nil,
              Set(seen.map(\.0)) != Set(model.coupons.filter { $0.value.campaign == campaign }.keys)
            {
              log.violations.append("claims(of: \(campaign)) disagrees with the model")
            }
            note([.seen(seen)])
          }
        }
      } catch {
        note(inFlight)
        log.error = error
        if ![.io, .stopped, .closed].contains(error.code) {
          log.violations.append("unexpected error: \(error)")
        }
        return log
      }
    }
    return log
  }
}
