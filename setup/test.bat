@echo off
rem The test command on Windows: the same installer, the test requirements, then pytest.
call "%~dp0setup.bat" requirements-test.txt || exit /b 1
pushd "%~dp0.."
"venv\Scripts\python.exe" -m pytest %*
set "RC=%ERRORLEVEL%"
popd & exit /b %RC%
