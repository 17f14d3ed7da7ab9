"""Shared pytest settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Run the whole session on one torch thread.

    The tensors are tiny, and on a busy 2-core machine a second thread costs
    more than it saves. Session scope also puts module-scoped fixtures on the
    same thread count as the tests, because float sums depend on it.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
