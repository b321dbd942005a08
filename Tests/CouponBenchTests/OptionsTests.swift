import Testing

@testable import CouponBench

@Suite("Command line")
struct OptionsTests {
  @Test
  func scenariosAndOptionsAreParsedInBothSpellings() throws {
    let options = try BenchOptions.parse([
      "flash-sale", "--concurrency", "1,16", "--runs=3", "batch", "--data-dir", "/mnt/x",
      "--quick", "flash-sale",
    ])
    #expect(options.scenarios == ["flash-sale", "batch"], "in order, each once")
    #expect(options.concurrency == [1, 16])
    #expect(options.runs == 3)
    #expect(options.dataDirectory == "/mnt/x")
    #expect(options.quick)
  }

  @Test
  func quickShrinksTheDefaultsAndExplicitValuesWin() throws {
    let quick = try BenchOptions.parse(["--quick"])
    let full = try BenchOptions.parse([])
    #expect(quick.runs == 1 && full.runs == 5)
    #expect(quick.recoveryClaims < full.recoveryClaims)
    #expect(try BenchOptions.parse(["--large"]).recoveryClaims == 10_000_000)
    #expect(try BenchOptions.parse(["--quick", "--recovery-claims", "7"]).recoveryClaims == 7)
  }

  @Test(arguments: [
    ["--runs"], ["--runs", "0"], ["--runs", "x"], ["--concurrency", "1,,2"],
    ["--concurrency", "0"], ["--duration", "-1"], ["no-such-scenario"], ["--no-such-option"],
  ])
  func badArgumentsAreUsageErrors(arguments: [String]) {
    #expect(throws: UsageError.self) { try BenchOptions.parse(arguments) }
  }

  @Test
  func everyScenarioHasAUniqueNameListedInTheUsage() {
    let names = ScenarioRegistry.all.map(\.name)
    #expect(Set(names).count == names.count)
    for name in names {
      #expect(BenchOptions.usage.contains(name))
      #expect(ScenarioRegistry.named(name)?.name == name)
    }
  }
}
