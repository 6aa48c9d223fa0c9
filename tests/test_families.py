"""Every shared check over every model family and adapt_scope."""

import pytest

from .testers import FAMILIES, SCOPES, FewShotCommonTester


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("family", FAMILIES)
class TestFamiliesAndScopes(FewShotCommonTester):
    def test_meta_gradient_matches_reference(self, family, scope, tokenizer):
        self._test_meta_gradient_matches_reference(family, scope, tokenizer)

    def test_adapt_export_round_trip(self, family, scope, tokenizer, tmp_path):
        self._test_adapt_export_round_trip(family, scope, tokenizer, tmp_path)

    def test_adapt_export_round_trip_without_a_step(self, family, scope, tokenizer, tmp_path):
        self._test_adapt_export_round_trip(family, scope, tokenizer, tmp_path, inner_steps=0)

    def test_save_load_round_trip(self, family, scope, tokenizer, tmp_path):
        self._test_save_load_round_trip(family, scope, tokenizer, tmp_path)
