import Testing
@Test("placeholder e2e") func placeholderE2E() { #expect(1 == 1) }
