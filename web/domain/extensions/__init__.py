"""Extensions (分机): the phones that register, with SIP passwords shown once."""
