"""Text over the air: a DeepSC-class semantic JSCC (:mod:`.model`), its tokenizer
(:mod:`.tokenizer`), the LM-based separate source-channel coding chain (:mod:`.sscc`) and the
text metrics and energy accounting (:mod:`.metrics`). docs/text.md."""
